package scenario

// All lists the scenarios in the order they run.
var All = []Scenario{
	S1Commits,
	S2Create,
	S3Manifest,
	restoreVsCopy,
	orphanScanVsList,
	Failover,
	Scale,
	Adoption,
	Repository,
	Fsck,
}
