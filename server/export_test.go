package server

// StopGossipForTest stops the node's gossip without leaving, as a crash or a partition
// of the gossip port would: the others mark it suspect, then dead.
func (n *Node) StopGossipForTest() {
	if n.members != nil {
		n.members.Halt()
	}
}

// SetDutyPanicHookForTest installs the duty guard's fault-injection hook for the nodes
// started after it (nil removes it) and returns a func that puts the old one back.
func SetDutyPanicHookForTest(hook func(duty string) bool) (restore func()) {
	old := dutyPanicHook
	dutyPanicHook = hook
	return func() { dutyPanicHook = old }
}

// DutyNames are the duties the guard knows.
var DutyNames = dutyNames
