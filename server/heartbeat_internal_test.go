package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A heartbeat of a term newer than the node's reaches Raft's main loop (Consumer),
// never the handler on the transport's connection goroutine: that fast path let it
// race the leader loop and write entries under a term the node did not lead
// (hashicorp/raft#695, the replica divergence of the seed-90210417 fault run). A
// heartbeat of the node's own term (or older) is answered on the fast path even while
// the main loop is busy: nobody reads Consumer() here for those cases.
func TestRaftTransportFastPathOnlyForKnownTerms(t *testing.T) {
	cases := []struct {
		name          string
		nodeTerm      uint64
		termKnown     bool
		heartbeatTerm uint64
		fastPath      bool
	}{
		{name: "same term", nodeTerm: 7, termKnown: true, heartbeatTerm: 7, fastPath: true},
		{name: "older term", nodeTerm: 7, termKnown: true, heartbeatTerm: 6, fastPath: true},
		{name: "newer term", nodeTerm: 7, termKnown: true, heartbeatTerm: 8, fastPath: false},
		{name: "term not known yet", termKnown: false, heartbeatTerm: 1, fastPath: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			server := listenRaftTransport(t)
			defer server.Close()
			if tc.termKnown {
				term := func() uint64 { return tc.nodeTerm }
				server.currentTerm.Store(&term)
			}
			fastPath := make(chan struct{}, 1)
			server.SetHeartbeatHandler(func(rpc raft.RPC) {
				fastPath <- struct{}{}
				rpc.Respond(&raft.AppendEntriesResponse{Term: tc.nodeTerm, Success: true}, nil)
			})
			mainLoop := make(chan struct{}, 1)
			done := make(chan struct{})
			defer close(done)
			if !tc.fastPath {
				go func() {
					select {
					case rpc := <-server.Consumer():
						mainLoop <- struct{}{}
						rpc.Respond(&raft.AppendEntriesResponse{Term: tc.heartbeatTerm, Success: true}, nil)
					case <-done:
					}
				}()
			}

			client := listenRaftTransport(t)
			defer client.Close()
			var resp raft.AppendEntriesResponse
			require.NoError(t, client.AppendEntries("n1", server.LocalAddr(), heartbeat(client, tc.heartbeatTerm), &resp))
			require.True(t, resp.Success)
			if tc.fastPath {
				require.Len(t, fastPath, 1, "a heartbeat of a known term waited for the main loop")
			} else {
				require.Empty(t, fastPath, "a heartbeat of a newer term was handled off Raft's main loop")
				require.Len(t, mainLoop, 1)
			}
		})
	}
}

// TestHeartbeatWithNewerTermNeverLendsItsTerm drives the race itself: a one-node
// cluster applies entries from several goroutines while heartbeats with the next term
// arrive from a leader that does not exist. The node must step down before it writes
// anything under that term: an entry carrying a ghost's term is an entry no leader of
// that term wrote. With raft's fast path about half the heartbeats did (on 2 cores).
func TestHeartbeatWithNewerTermNeverLendsItsTerm(t *testing.T) {
	defer goleak.VerifyNone(t)
	trans := listenRaftTransport(t)
	logs := raft.NewInmemStore()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 20 * time.Millisecond
	conf.ElectionTimeout = 20 * time.Millisecond
	conf.LeaderLeaseTimeout = 20 * time.Millisecond
	conf.CommitTimeout = time.Millisecond
	conf.Logger = newHCLog(slog.New(slog.DiscardHandler), "raft")
	r, err := raft.NewRaft(conf, countingFSM{}, logs, logs, raft.NewInmemSnapshotStore(), trans)
	require.NoError(t, err)
	trans.answerHeartbeatsFor(r)
	require.NoError(t, r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: trans.LocalAddr()}}}).Error())
	ghost := listenRaftTransport(t)

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_ = r.Apply([]byte("x"), 50*time.Millisecond).Error()
			}
		}()
	}

	ghostTerms := map[uint64]bool{}
	deadline := time.Now().Add(3 * time.Second)
	for trial := 0; trial < 100 && time.Now().Before(deadline); trial++ {
		require.Eventually(t, func() bool { return r.State() == raft.Leader }, 5*time.Second, time.Millisecond)
		term := r.CurrentTerm() + 1
		ghostTerms[term] = true
		var resp raft.AppendEntriesResponse
		require.NoError(t, ghost.AppendEntries("n1", trans.LocalAddr(), heartbeat(ghost, term), &resp))
	}
	stop.Store(true)
	wg.Wait()
	require.NoError(t, r.Shutdown().Error())
	require.NoError(t, trans.Close())
	require.NoError(t, ghost.Close())

	first, _ := logs.FirstIndex()
	last, _ := logs.LastIndex()
	var lent []string
	for i := first; i <= last; i++ {
		var l raft.Log
		require.NoError(t, logs.GetLog(i, &l))
		if ghostTerms[l.Term] {
			lent = append(lent, fmt.Sprintf("index %d term %d %s", i, l.Term, l.Type))
		}
	}
	require.Empty(t, lent, "entries written under a term only a ghost's heartbeat announced (of %d entries)", last-first+1)
}

func listenRaftTransport(t *testing.T) *raftTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stream, err := newTCPStreamLayer(ln, "", nil)
	require.NoError(t, err)
	return newRaftTransport(stream, slog.New(slog.DiscardHandler))
}

// heartbeat is an AppendEntries that raft's transport recognizes as a heartbeat.
func heartbeat(from raft.Transport, term uint64) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("ghost"), Addr: from.EncodePeer("ghost", from.LocalAddr())},
		Term:      term,
	}
}

type countingFSM struct{}

func (countingFSM) Apply(*raft.Log) any                 { return nil }
func (countingFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (countingFSM) Restore(r io.ReadCloser) error       { return r.Close() }

// The Raft transport never pipelines AppendEntries: a pipeline whose follower answers
// Success=false can leave the leader's sender blocked forever (see newRaftTransport).
// hashicorp/raft falls back to one request at a time on this error.
func TestRaftTransportDoesNotPipeline(t *testing.T) {
	a, b := listenRaftTransport(t), listenRaftTransport(t)
	t.Cleanup(func() { a.Close(); b.Close() })
	p, err := a.AppendEntriesPipeline("b", b.LocalAddr())
	require.ErrorIs(t, err, raft.ErrPipelineReplicationNotSupported)
	require.Nil(t, p)
}
