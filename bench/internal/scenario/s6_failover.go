package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Failover: the leader is killed with SIGKILL while writers write; the time from the
// kill to the first acknowledged write issued after it, snapkeep (three nodes) and
// etcd (three members) trial after trial, A B A B, both with their default timeouts
// (snapkeep's LAN defaults: 300 ms heartbeat, election and lease timeouts).
var Failover = Scenario{Number: 6, Name: "failover", Title: "Failover: leader SIGKILL → first acknowledged write", Run: runFailover}

const (
	// failoverWriters write concurrently with staggered deadlines (see writers), so
	// that a fresh write is issued every ~50 ms while the cluster fails over.
	failoverWriters = 8
	// failoverCallDeadline abandons a call stuck on the dead leader (or waiting for an
	// election) so that the writer issues a fresh one: writer i's deadline is this
	// times 1 + i/8, 400 to 750 ms.
	failoverCallDeadline = 400 * time.Millisecond
	// failoverMaxWait bounds one trial's wait for the first acknowledged write.
	failoverMaxWait = 30 * time.Second
	// catchUpTimeout bounds the wait for the restarted node to catch up.
	catchUpTimeout = 60 * time.Second
)

func runFailover(ctx context.Context, e *Env, r *report.Scenario) error {
	trials := e.Pick(20, 5)
	r.Setup = fmt.Sprintf("A fresh three-node snapkeep cluster (fsync on, its default Raft timeouts for a LAN: 300 ms heartbeat, "+
		"election and leader-lease timeouts, pre-vote on) and a fresh three-member etcd 3.7.3 cluster (etcd's defaults: 100 ms heartbeat, "+
		"1 s election timeout), side by side on 127.0.0.1, %d trials each, alternating snapkeep and etcd (A B A B). "+
		"In each trial %d writers each issue one small write at a time with a deadline per call (%v for the first writer, 50 ms "+
		"more for each next one, up to 750 ms: staggered, so that calls stuck through the election end at different moments and "+
		"a fresh call is issued every ~50 ms), an abandoned or failed call followed at once by a new one — snapkeep: "+
		"`AllocateSegment` through the Go client (all three endpoints, leader following, its default retries inside the "+
		"deadline: at once to a leader a node names or to the next endpoint, polling every 12.5–25 ms while none is named); etcd: `Put` of a small key through clientv3 (all three endpoints). Once a write is acknowledged, the leader "+
		"(found with snapkeep's `ClusterStatus`, etcd's maintenance `Status`) is killed with SIGKILL; the failover time is from "+
		"just before the signal to the acknowledgement of the first write *issued after* the kill (a write issued before it may "+
		"have been committed by the old leader). The killed node is then restarted and the trial ends once every node is back "+
		"and has applied the leader's commit index. Meanwhile each survivor is asked every 20 ms which node leads (snapkeep: "+
		"the node's `/health`, so these nodes run with `--http-addr`; etcd: `Status`), for the time to a new leader. Quick mode "+
		"runs 5 trials instead of 20.",
		trials, failoverWriters, failoverCallDeadline)

	sk, err := e.StartSnapkeep(ctx, "failover-snapkeep", env.SnapkeepOptions{HTTP: true})
	if err != nil {
		return err
	}
	cl, err := sk.Client(ctx)
	if err != nil {
		return fmt.Errorf("snapkeep client: %w", err)
	}
	defer cl.Close()
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("failover")); err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	etcd, err := e.StartEtcd(ctx, "failover-etcd")
	if err != nil {
		return err
	}
	ec, err := etcd.Client()
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer ec.Close()

	var skTimes, etcdTimes, skElected, etcdElected []float64 // seconds
	defer func() { failoverReport(r, skTimes, etcdTimes, skElected, etcdElected) }()
	for i := range trials {
		a, err := snapkeepFailoverTrial(ctx, sk, cl)
		if err != nil {
			return fmt.Errorf("snapkeep trial %d: %w", i+1, err)
		}
		b, err := etcdFailoverTrial(ctx, etcd, ec, i)
		if err != nil {
			return fmt.Errorf("etcd trial %d: %w", i+1, err)
		}
		skTimes, skElected = append(skTimes, a.FirstWrite.Seconds()), append(skElected, a.NewLeader.Seconds())
		etcdTimes, etcdElected = append(etcdTimes, b.FirstWrite.Seconds()), append(etcdElected, b.NewLeader.Seconds())
		e.Logf("  failover trial %d/%d: snapkeep %v (new leader seen at %v), etcd %v (%v)", i+1, trials,
			a.FirstWrite.Round(time.Millisecond), a.NewLeader.Round(time.Millisecond), b.FirstWrite.Round(time.Millisecond), b.NewLeader.Round(time.Millisecond))
	}
	return nil
}

// failoverReport fills the scenario's result from the trials measured so far.
func failoverReport(r *report.Scenario, skTimes, etcdTimes, skElected, etcdElected []float64) {
	if len(skTimes) == 0 {
		return
	}
	r.Figures = append(r.Figures,
		report.Figure{Name: "snapkeep: kill → a survivor names the new leader, median", Value: stats.Summarize(skElected).Median, Unit: "s",
			Note: fmt.Sprintf("/health of each survivor polled every %v", leaderPollInterval)},
		report.Figure{Name: "etcd: kill → a survivor names the new leader, median", Value: stats.Summarize(etcdElected).Median, Unit: "s",
			Note: fmt.Sprintf("maintenance Status of each survivor polled every %v", leaderPollInterval)},
	)
	r.Comparisons = append(r.Comparisons,
		report.NewComparison("failover p50 (SIGKILL → first acknowledged write)", "s", report.Lower, skTimes, "etcd, 3 members", etcdTimes,
			&report.Target{Op: "<=", Ratio: 1.0, Text: "≤ 1.0× etcd's p50, both with default timeouts"}),
		report.NewComparison("failover p99", "s", report.Lower, []float64{p99(skTimes)}, "etcd, 3 members", []float64{p99(etcdTimes)}, nil),
	)
	r.Figures = append(r.Figures,
		report.Figure{Name: "snapkeep failover p99", Value: p99(skTimes), Unit: "s", Note: fmt.Sprintf("nearest rank over %d trials", len(skTimes))},
		report.Figure{Name: "etcd failover p99", Value: p99(etcdTimes), Unit: "s", Note: fmt.Sprintf("nearest rank over %d trials", len(etcdTimes))},
	)
	labels := make([]string, len(skTimes))
	for i := range labels {
		labels[i] = strconv.Itoa(i + 1)
	}
	r.Charts = append(r.Charts, report.Chart{File: "failover.svg", Title: "Failover per trial: leader SIGKILL → first acknowledged write",
		YLabel: "seconds", Labels: labels, Series: []report.Series{{Name: "snapkeep", Values: skTimes}, {Name: "etcd", Values: etcdTimes}}})
}

func p99(values []float64) float64 {
	return stats.Percentile(slices.Sorted(slices.Values(values)), 99)
}

// failoverTrial is one trial's measurements.
type failoverTrial struct {
	// FirstWrite is from the kill to the first acknowledged write issued after it.
	FirstWrite time.Duration
	// NewLeader is from the kill until a surviving node names a new leader (polled
	// every leaderPollInterval; 0 if none was seen before the first write).
	NewLeader time.Duration
}

const leaderPollInterval = 20 * time.Millisecond

// killAndMeasure runs writers, waits for a first acknowledgement, kills the leader
// with kill, and measures the time to the first acknowledged write issued after it;
// meanwhile newLeader (true once a survivor names a leader other than the killed one)
// is polled.
func killAndMeasure(ctx context.Context, write func(ctx context.Context, writer int) error, kill func() error,
	newLeader func(ctx context.Context) bool) (failoverTrial, error) {
	var t failoverTrial
	w := startWriters(ctx, failoverWriters, failoverCallDeadline, write)
	if _, ok := w.waitAckAfter(ctx, time.Now(), failoverMaxWait); !ok {
		w.stop()
		return t, errors.New("no write acknowledged before the kill")
	}
	killed := time.Now()
	if err := kill(); err != nil {
		w.stop()
		return t, fmt.Errorf("kill the leader: %w", err)
	}
	// The poll goes on after the first write (until it sees the leader), so that a
	// slow poll is reported as late rather than missing.
	pollCtx, stopPoll := context.WithTimeout(ctx, failoverMaxWait)
	defer stopPoll()
	leaderSeen := make(chan time.Duration, 1)
	go func() {
		defer close(leaderSeen)
		for pollCtx.Err() == nil {
			cctx, cancel := context.WithTimeout(pollCtx, 200*time.Millisecond)
			ok := newLeader(cctx)
			cancel()
			if ok {
				leaderSeen <- time.Since(killed)
				return
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(leaderPollInterval):
			}
		}
	}()
	_, ok := w.waitAckAfter(ctx, killed, failoverMaxWait)
	history := w.stop()
	t.NewLeader = <-leaderSeen
	if !ok {
		return t, fmt.Errorf("no write issued after the kill was acknowledged within %v", failoverMaxWait)
	}
	t.FirstWrite, _ = failoverTime(history, killed) // the final history: the earliest acknowledgement
	return t, nil
}

func snapkeepFailoverTrial(ctx context.Context, c *env.Snapkeep, cl *client.Client) (failoverTrial, error) {
	leader, err := c.Leader(ctx)
	if err != nil {
		return failoverTrial{}, err
	}
	t, err := killAndMeasure(ctx, func(ctx context.Context, _ int) error {
		_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("failover"))
		return err
	}, leader.Kill, func(ctx context.Context) bool {
		// A survivor's /health names the leader it knows, from its own Raft state
		// (ClusterStatus would also wait for the dead node).
		for _, n := range c.Nodes {
			if n == leader {
				continue
			}
			if id, err := healthLeader(ctx, n.HTTPAddr); err == nil && id != "" && id != leader.ID {
				return true
			}
		}
		return false
	})
	if err != nil {
		return t, err
	}
	if err := leader.Start(); err != nil {
		return t, fmt.Errorf("restart %s: %w", leader.ID, err)
	}
	return t, waitSnapkeepCaughtUp(ctx, cl, len(c.Nodes))
}

// healthLeader is the leader a node's /health names ("" when it knows none).
func healthLeader(ctx context.Context, httpAddr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/health", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var h struct {
		Leader string `json:"leader"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return "", fmt.Errorf("/health of %s: %w", httpAddr, err)
	}
	return h.Leader, nil
}

// waitSnapkeepCaughtUp waits until the cluster names a leader and every node answers as
// leader or follower having applied the leader's commit index.
func waitSnapkeepCaughtUp(ctx context.Context, cl *client.Client, nodes int) error {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	var last string
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.ClusterStatus(cctx)
		ccancel()
		if err == nil {
			if last = snapkeepLagging(st, nodes); last == "" {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not caught up: %s: %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// snapkeepLagging says why the status is not a caught-up cluster ("" when it is): every
// node knows the leader's commit index and has applied every command the leader has.
// The applied index a node reports is its FSM's, which entries without a command (the
// no-op a new leader appends, configuration changes) do not move: after a failover whose
// acknowledged writes were all retries answered from the request-id window, the newest
// entry is the no-op, and every node — the leader too — stays one below the commit index.
func snapkeepLagging(st *pb.ClusterStatusResponse, nodes int) string {
	if st.LeaderId == "" {
		return "no leader"
	}
	if len(st.Nodes) != nodes {
		return fmt.Sprintf("%d nodes in the status", len(st.Nodes))
	}
	var leader *pb.NodeStatus
	for _, n := range st.Nodes {
		if n.Id == st.LeaderId {
			leader = n
		}
	}
	if leader == nil {
		return fmt.Sprintf("the leader %s is not in the status", st.LeaderId)
	}
	for _, n := range st.Nodes {
		if n.Role != pb.NodeRole_NODE_ROLE_LEADER && n.Role != pb.NodeRole_NODE_ROLE_FOLLOWER {
			return fmt.Sprintf("%s is %v", n.Id, n.Role)
		}
		if n.CommitIndex < leader.CommitIndex {
			return fmt.Sprintf("%s knows commit index %d of %d", n.Id, n.CommitIndex, leader.CommitIndex)
		}
		if n.AppliedIndex < leader.AppliedIndex {
			return fmt.Sprintf("%s applied %d of the leader's %d", n.Id, n.AppliedIndex, leader.AppliedIndex)
		}
	}
	return ""
}

func etcdFailoverTrial(ctx context.Context, c *env.Etcd, cl *clientv3.Client, trial int) (failoverTrial, error) {
	leader, err := etcdLeader(ctx, c, cl)
	if err != nil {
		return failoverTrial{}, err
	}
	old, err := memberStatus(ctx, cl, leader)
	if err != nil {
		return failoverTrial{}, err
	}
	t, err := killAndMeasure(ctx, func(ctx context.Context, writer int) error {
		_, err := cl.Put(ctx, fmt.Sprintf("failover/%d/%d", trial, writer), "v")
		return err
	}, leader.Kill, func(ctx context.Context) bool {
		for _, m := range c.Members {
			if m == leader {
				continue
			}
			if st, err := cl.Status(ctx, "http://"+m.ClientAddr); err == nil && st.Leader != 0 && st.Leader != old.Header.MemberId {
				return true
			}
		}
		return false
	})
	if err != nil {
		return t, err
	}
	if err := leader.Start(); err != nil {
		return t, fmt.Errorf("restart %s: %w", leader.Name, err)
	}
	return t, waitEtcdCaughtUp(ctx, c, cl)
}

// etcdLeader asks the members' maintenance Status which one leads.
func etcdLeader(ctx context.Context, c *env.Etcd, cl *clientv3.Client) (*env.EtcdMember, error) {
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.Status(cctx, "http://"+m.ClientAddr)
		cancel()
		if err != nil || st.Leader == 0 {
			continue
		}
		for _, l := range c.Members {
			lst, err := memberStatus(ctx, cl, l)
			if err == nil && lst.Header.MemberId == st.Leader {
				return l, nil
			}
		}
	}
	return nil, errors.New("no etcd member names a leader")
}

func memberStatus(ctx context.Context, cl *clientv3.Client, m *env.EtcdMember) (*clientv3.StatusResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Status(cctx, "http://"+m.ClientAddr)
}

// waitEtcdCaughtUp waits until every member answers, all name the same leader, and
// each has applied the leader's commit index.
func waitEtcdCaughtUp(ctx context.Context, c *env.Etcd, cl *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	var last string
	for {
		last = etcdLagging(ctx, c, cl)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not caught up: %s: %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func etcdLagging(ctx context.Context, c *env.Etcd, cl *clientv3.Client) string {
	var sts []*clientv3.StatusResponse
	for _, m := range c.Members {
		st, err := memberStatus(ctx, cl, m)
		if err != nil {
			return fmt.Sprintf("%s: %v", m.Name, err)
		}
		sts = append(sts, st)
	}
	leader := sts[0].Leader
	var commit uint64
	for i, st := range sts {
		if st.Leader == 0 || st.Leader != leader {
			return fmt.Sprintf("%s names leader %x, %s names %x", c.Members[0].Name, leader, c.Members[i].Name, st.Leader)
		}
		if st.Header.MemberId == leader {
			commit = st.RaftIndex
		}
	}
	for i, st := range sts {
		if st.RaftAppliedIndex < commit {
			return fmt.Sprintf("%s applied %d of %d", c.Members[i].Name, st.RaftAppliedIndex, commit)
		}
	}
	return ""
}
