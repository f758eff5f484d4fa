//go:build !unix

package raftstore

import "time"

// lockDir takes no lock where flock is not available; raft-boltdb still locks raft.db.
func lockDir(string, bool, time.Duration) (func(), error) { return func() {}, nil }
