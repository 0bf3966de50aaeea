module wisp/services/gateway

go 1.26

replace (
	wisp/contract => ../../contract
	wisp/platform => ../../platform
	wisp/testkit => ../../testkit
)
