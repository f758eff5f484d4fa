package scenario

// All lists the scenarios in the order they run.
var All = []Scenario{
	restoreVsCopy,
	orphanScanVsList,
	Failover,
	Scale,
}
