package server

// StopGossipForTest stops the node's gossip without leaving, as a crash or a partition
// of the gossip port would: the others mark it suspect, then dead.
func (n *Node) StopGossipForTest() {
	if n.members != nil {
		n.members.halt()
	}
}
