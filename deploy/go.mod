module wisp/deploy

go 1.26
