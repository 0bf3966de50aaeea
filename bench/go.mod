module wisp/bench

go 1.26

replace (
	wisp/contract => ../contract
	wisp/platform => ../platform
	wisp/stack => ../stack
	wisp/testkit => ../testkit
)
