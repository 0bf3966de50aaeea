module wisp/contract

go 1.26
