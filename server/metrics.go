package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/gc"
	"github.com/snapkeep/snapkeep/restore"
	"github.com/snapkeep/snapkeep/server/api"
	"github.com/snapkeep/snapkeep/server/policy"
)

// Metrics: every node has its own prometheus.Registry (tests and `snapkeep dev` run
// three nodes in one process, so the global default registry is never used), served
// on /metrics by the node's HTTP server (http.go). docs/OPERATIONS.md describes every
// metric.
//
// Raft and FSM gauges are read at scrape time by a Collector (the FSM keeps O(1)
// running totals: see fsm/stats.go); latencies and the counters of work this node did
// (gRPC requests, restore copies, GC runs) are updated as the work happens.

// latencyBuckets span 100µs to ~30s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 14)

type nodeMetrics struct {
	reg *prometheus.Registry

	fsmApply  prometheus.Histogram
	raftApply prometheus.Histogram

	snapshotPersist prometheus.Histogram
	snapshotBytes   prometheus.Gauge

	grpcHandled *prometheus.CounterVec
	grpcSeconds *prometheus.HistogramVec

	restoreFiles    *prometheus.CounterVec
	restoreBytes    *prometheus.CounterVec
	restoreFailures *prometheus.CounterVec

	gcRuns          *prometheus.CounterVec
	gcSeconds       prometheus.Histogram
	gcDeleted       *prometheus.CounterVec
	gcBytes         *prometheus.CounterVec
	gcRecords       prometheus.Counter
	gcErrors        prometheus.Counter
	gcScanned       prometheus.Counter
	gcLastCompleted prometheus.Gauge

	dutyPanics *prometheus.CounterVec

	policyProposals *prometheus.CounterVec
	verifications   *prometheus.CounterVec
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	m.fsmApply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapkeep_fsm_apply_seconds",
		Help:    "Time the state machine takes to apply one Raft log entry on this node (entries applied together in a batch share its time evenly).",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2.5, 14),
	})
	m.raftApply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapkeep_raft_apply_seconds",
		Help:    "On the leader, time from proposing a command to Raft until it is committed and applied (or the caller gave up).",
		Buckets: latencyBuckets,
	})
	m.snapshotPersist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapkeep_raft_snapshot_persist_seconds",
		Help:    "Time this node takes to write a raft snapshot of its state to its snapshot store (Persist, synced and closed).",
		Buckets: latencyBuckets,
	})
	m.snapshotBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "snapkeep_raft_snapshot_persisted_bytes",
		Help: "Size of the last raft snapshot this node persisted; 0 if none since it started.",
	})
	m.grpcHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_grpc_server_handled_total",
		Help: "gRPC requests this node completed, by service, method and status code.",
	}, []string{"service", "method", "code"})
	m.grpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "snapkeep_grpc_server_handling_seconds",
		Help:    "Time this node took to answer gRPC requests (streams: until the stream ended), by service and method.",
		Buckets: latencyBuckets,
	}, []string{"service", "method"})
	m.restoreFiles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_restore_copied_files_total",
		Help: "Files this node's executor copied (and verified, when the job verifies), by job kind: restore, export, repository_restore.",
	}, []string{"kind"})
	m.restoreBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_restore_copied_bytes_total",
		Help: "Bytes this node's executor copied, by job kind.",
	}, []string{"kind"})
	m.restoreFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_restore_failed_tasks_total",
		Help: "Copies that failed on this node after their retries (the task goes back to the pool, or fails the job when permanent), by job kind.",
	}, []string{"kind"})
	m.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_scrub_verifications_total",
		Help: "Snapshot verifications this node's scrubber recorded, by outcome (ok, repaired, damaged, data_loss) and depth (sizes, deep).",
	}, []string{"outcome", "depth"})
	m.policyProposals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_policy_proposals_total",
		Help: "Policy work this node did as leader, by kind (run: a scheduled run; retain: a retention with something to expire; export: an export of a policy's snapshot started; export-retain: exported copies removed from a repository) and outcome (ok; refused: already run or changed meanwhile; error).",
	}, []string{"kind", "outcome"})
	m.gcRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_gc_runs_total",
		Help: "Garbage collections this node ran as leader, by result: ok, dry_run or failed.",
	}, []string{"result"})
	m.gcSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapkeep_gc_run_seconds",
		Help:    "Duration of the garbage collections this node ran (dry runs included).",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 14),
	})
	m.gcDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_gc_deleted_objects_total",
		Help: "Objects garbage collection deleted on this node's runs, by reason.",
	}, []string{"reason"})
	m.gcBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_gc_freed_bytes_total",
		Help: "Bytes garbage collection freed on this node's runs, by reason.",
	}, []string{"reason"})
	m.gcRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "snapkeep_gc_removed_records_total",
		Help: "Catalog records (segments, index builds, snapshots, collections) garbage collection removed on this node's runs.",
	})
	m.gcErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "snapkeep_gc_errors_total",
		Help: "Errors garbage collection met on this node's runs (their objects are retried next run).",
	})
	m.gcScanned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "snapkeep_gc_scanned_objects_total",
		Help: "Objects the orphan scan listed on this node's runs.",
	})
	m.gcLastCompleted = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "snapkeep_gc_last_completed_timestamp_seconds",
		Help: "Unix time at which the last garbage collection (not a dry run) this node ran finished without error; 0 if none.",
	})
	m.dutyPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapkeep_duty_panics_total",
		Help: "Panics recovered in this node's background duties, by duty (each is logged with its stack; the duty backs off and runs again).",
	}, []string{"duty"})
	for _, d := range dutyNames {
		m.dutyPanics.WithLabelValues(d)
	}
	for _, r := range []string{"ok", "dry_run", "failed"} {
		m.gcRuns.WithLabelValues(r)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{n: n},
		m.fsmApply, m.raftApply, m.snapshotPersist, m.snapshotBytes, m.grpcHandled, m.grpcSeconds,
		m.restoreFiles, m.restoreBytes, m.restoreFailures,
		m.policyProposals, m.verifications, m.gcRuns, m.gcSeconds, m.gcDeleted, m.gcBytes, m.gcRecords, m.gcErrors, m.gcScanned, m.gcLastCompleted,
		m.dutyPanics,
	)
	return m
}

// Registry is the node's Prometheus registry (what /metrics serves).
func (n *Node) Registry() *prometheus.Registry { return n.metrics.reg }

// metricsUnaryInterceptor and metricsStreamInterceptor count and time requests. They
// are chained after the node's own interceptors, so they see handler errors before
// those are converted to statuses (and convert them the same way), and a handler's
// panic as no return (counted as Internal, as recoverInterceptor answers it).
func (n *Node) metricsUnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	returned := false
	defer func() { n.observeRPC(info.FullMethod, start, returned, err) }()
	resp, err = handler(ctx, req)
	returned = true
	return resp, err
}

func (n *Node) metricsStreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	returned := false
	defer func() { n.observeRPC(info.FullMethod, start, returned, err) }()
	err = handler(srv, ss)
	returned = true
	return err
}

func (n *Node) observeRPC(fullMethod string, start time.Time, returned bool, err error) {
	code := codes.Internal // a panic, answered as Internal by recoverInterceptor
	if returned {
		code = status.Code(api.Status(err, n.root))
	}
	service, method := splitMethod(fullMethod)
	m := n.metrics
	m.grpcHandled.WithLabelValues(service, method, code.String()).Inc()
	m.grpcSeconds.WithLabelValues(service, method).Observe(time.Since(start).Seconds())
}

// splitMethod splits "/package.Service/Method".
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// observeSince records the time since start in h.
func observeSince(h prometheus.Observer, start time.Time) { h.Observe(time.Since(start).Seconds()) }

// raftFSM is the state machine as Raft sees it: the node's FSM (a raft.BatchingFSM),
// with each Apply, ApplyBatch and raft snapshot's Persist timed (the fsm package has
// no clock).
func (n *Node) raftFSM() raft.FSM { return timedFSM{FSM: n.fsm, m: n.metrics} }

var _ raft.BatchingFSM = timedFSM{}

type timedFSM struct {
	*fsm.FSM
	m *nodeMetrics
}

func (f timedFSM) Apply(l *raft.Log) any {
	defer observeSince(f.m.fsmApply, time.Now())
	return f.FSM.Apply(l)
}

// ApplyBatch counts each entry of a batch with an even share of the batch's time.
func (f timedFSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	out := f.FSM.ApplyBatch(logs)
	if len(logs) > 0 {
		each := time.Since(start).Seconds() / float64(len(logs))
		for range logs {
			f.m.fsmApply.Observe(each)
		}
	}
	return out
}

func (f timedFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return timedSnapshot{FSMSnapshot: s, m: f.m}, nil
}

// timedSnapshot records how long a successful Persist takes and how many bytes it
// wrote. Persist closes the sink, so the time includes the store's sync and rename.
type timedSnapshot struct {
	raft.FSMSnapshot
	m *nodeMetrics
}

func (s timedSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	cs := &countingSink{SnapshotSink: sink}
	if err := s.FSMSnapshot.Persist(cs); err != nil {
		return err
	}
	observeSince(s.m.snapshotPersist, start)
	s.m.snapshotBytes.Set(float64(cs.n))
	return nil
}

type countingSink struct {
	raft.SnapshotSink
	n int64
}

func (c *countingSink) Write(p []byte) (int, error) {
	n, err := c.SnapshotSink.Write(p)
	c.n += int64(n)
	return n, err
}

// restoreCopied counts one task's outcome on this node's executor.
func (m *nodeMetrics) restoreCopied(kind fsmpb.JobKind, res restore.Result) {
	label := "restore"
	switch kind {
	case fsmpb.JobKind_JOB_KIND_EXPORT:
		label = "export"
	case fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE:
		label = "repository_restore"
	}
	switch {
	case res.Err == nil:
		m.restoreFiles.WithLabelValues(label).Inc()
		m.restoreBytes.WithLabelValues(label).Add(float64(res.Bytes))
	case !errors.Is(res.Err, restore.ErrLeaseOver):
		m.restoreFailures.WithLabelValues(label).Inc()
	}
}

// gcRan counts one garbage collection this node ran.
func (m *nodeMetrics) gcRan(opts gc.Options, start time.Time, res *gc.Result, err error) {
	m.gcSeconds.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		m.gcRuns.WithLabelValues("failed").Inc()
		return
	case opts.DryRun:
		m.gcRuns.WithLabelValues("dry_run").Inc()
		return
	}
	m.gcRuns.WithLabelValues("ok").Inc()
	rep := res.Report
	for _, c := range rep.Deleted {
		if c.Objects > 0 || c.Bytes > 0 {
			m.gcDeleted.WithLabelValues(c.Reason).Add(float64(c.Objects))
			m.gcBytes.WithLabelValues(c.Reason).Add(float64(c.Bytes))
		}
	}
	m.gcRecords.Add(float64(rep.RecordsRemoved))
	m.gcErrors.Add(float64(rep.ErrorCount))
	m.gcScanned.Add(float64(rep.ObjectsScanned))
	if rep.ErrorCount == 0 {
		m.gcLastCompleted.SetToCurrentTime()
	}
}

// stateCollector reads Raft's state and the FSM's sizes at scrape time.
type stateCollector struct{ n *Node }

var (
	descNodeInfo = prometheus.NewDesc("snapkeep_node_info",
		"Always 1; labels name this node and its version.", []string{"node", "version"}, nil)
	descHealthy = prometheus.NewDesc("snapkeep_node_healthy",
		"1 when this node's health check passes (see /health), else 0.", nil, nil)
	descUnhealthyReason = prometheus.NewDesc("snapkeep_node_unhealthy_reason",
		"1 for each reason this node's health check fails now (log_write_error, behind_leader, no_leader, leader_contact, leader_not_ready, raft_state, apply_lag), else 0.", []string{"reason"}, nil)
	descRaftState = prometheus.NewDesc("snapkeep_raft_state",
		"1 for this node's current Raft state, 0 for the others.", []string{"state"}, nil)
	descRaftLeader = prometheus.NewDesc("snapkeep_raft_has_leader",
		"1 when this node knows a leader, else 0.", nil, nil)
	descTerm = prometheus.NewDesc("snapkeep_raft_term",
		"Current Raft term.", nil, nil)
	descCommit = prometheus.NewDesc("snapkeep_raft_commit_index",
		"Highest Raft log index known to be committed.", nil, nil)
	descApplied = prometheus.NewDesc("snapkeep_raft_applied_index",
		"Highest Raft log index applied (no-op and configuration entries included).", nil, nil)
	descLastLog = prometheus.NewDesc("snapkeep_raft_last_log_index",
		"Highest index in this node's Raft log.", nil, nil)
	descLastContact = prometheus.NewDesc("snapkeep_raft_last_contact_seconds",
		"Seconds since this node last heard from a leader; 0 on the leader, -1 when never since it started.", nil, nil)
	descFSMApplied = prometheus.NewDesc("snapkeep_fsm_applied_index",
		"Log index of the last command the state machine applied.", nil, nil)
	descDatabases = prometheus.NewDesc("snapkeep_fsm_databases",
		"Databases in the catalog.", nil, nil)
	descCollections = prometheus.NewDesc("snapkeep_fsm_collections",
		"Collections in the catalog by state (dropped ones stay while snapshots or segments refer to them).", []string{"state"}, nil)
	descSegments = prometheus.NewDesc("snapkeep_fsm_segments",
		"Segment records by state.", []string{"state"}, nil)
	descFiles = prometheus.NewDesc("snapkeep_fsm_segment_files",
		"Files listed by segment records (their index builds' included), by the segment's state.", []string{"state"}, nil)
	descSnapshots = prometheus.NewDesc("snapkeep_fsm_snapshots",
		"Collection snapshots by state.", []string{"state"}, nil)
	descSnapshotsBroken = prometheus.NewDesc("snapkeep_fsm_snapshots_broken",
		"Committed snapshots whose last verification found lost data or a manifest it could not repair (snapkeep fsck lists them).", nil, nil)
	descRestoreJobs = prometheus.NewDesc("snapkeep_fsm_restore_jobs",
		"Restore jobs by state (finished ones are kept for the restore retention).", []string{"state"}, nil)
	descNodes = prometheus.NewDesc("snapkeep_fsm_registered_nodes",
		"Nodes registered in the catalog.", nil, nil)
	descRequests = prometheus.NewDesc("snapkeep_fsm_dedup_requests",
		"Request ids held by the deduplication window.", nil, nil)
	descPolicySnapshots = prometheus.NewDesc("snapkeep_policy_snapshots_total",
		"Snapshots each policy took that committed (taken), that failed (never committed, or a collection could not be snapshotted) and that its retention expired (deleted), from the replicated state.", []string{"policy", "outcome"}, nil)
	descPolicyLastSuccess = prometheus.NewDesc("snapkeep_policy_last_success_timestamp_seconds",
		"Unix time a snapshot of the policy last committed; 0 if never.", []string{"policy"}, nil)
	descPolicyLastFailure = prometheus.NewDesc("snapkeep_policy_last_failure_timestamp_seconds",
		"Unix time the policy last failed (a run's collection or a snapshot given up); 0 if never.", []string{"policy"}, nil)
	descClockOffset = prometheus.NewDesc("snapkeep_clock_offset_seconds",
		"Another voter's wall clock minus this node's, from the last sample (every second); absent when the voter did not answer for 5 s. The leader stamps commands with the median of the voters' clocks.", []string{"peer"}, nil)
	descPolicyNextRun = prometheus.NewDesc("snapkeep_policy_next_run_timestamp_seconds",
		"Unix time of the policy's next due time; 0 when disabled. In the past: the run is overdue (no quorum, or the leader cannot compile the schedule).", []string{"policy"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodeInfo, descHealthy, descUnhealthyReason, descRaftState, descRaftLeader, descTerm, descCommit,
		descApplied, descLastLog, descLastContact, descFSMApplied, descDatabases, descCollections, descSegments, descFiles,
		descSnapshots, descSnapshotsBroken, descRestoreJobs, descNodes, descRequests,
		descPolicySnapshots, descPolicyLastSuccess, descPolicyLastFailure, descPolicyNextRun, descClockOffset} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	h := n.health()
	gauge(descNodeInfo, 1, n.cfg.NodeID, n.cfg.Version)
	gauge(descHealthy, boolValue(h.Healthy))
	for _, reason := range healthReasons {
		gauge(descUnhealthyReason, boolValue(slices.Contains(h.Reasons, reason)), reason)
	}
	state := n.raft.State()
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		gauge(descRaftState, boolValue(s == state), strings.ToLower(s.String()))
	}
	gauge(descRaftLeader, boolValue(h.Leader != ""))
	gauge(descTerm, float64(h.Term))
	gauge(descCommit, float64(h.CommitIndex))
	gauge(descApplied, float64(h.AppliedIndex))
	gauge(descLastLog, float64(n.raft.LastIndex()))
	contact := -1.0
	if h.LastContactMS >= 0 {
		contact = float64(h.LastContactMS) / 1000
	}
	gauge(descLastContact, contact)
	for peer, off := range n.clock.Offsets() {
		gauge(descClockOffset, off.Seconds(), peer)
	}

	st := n.fsm.View().Stats()
	gauge(descFSMApplied, float64(st.AppliedIndex))
	gauge(descDatabases, float64(st.Databases))
	gauge(descNodes, float64(st.Nodes))
	gauge(descRequests, float64(st.Requests))
	byState := func(d *prometheus.Desc, values []int64, names map[int32]string, prefix string) {
		for i, v := range values {
			name, known := names[int32(i)]
			if i == 0 || !known {
				if v != 0 {
					gauge(d, float64(v), "unknown")
				}
				continue
			}
			gauge(d, float64(v), strings.ToLower(strings.TrimPrefix(name, prefix)))
		}
	}
	byState(descCollections, st.Collections[:], fsmpb.CollectionState_name, "COLLECTION_STATE_")
	byState(descSegments, st.Segments[:], fsmpb.SegmentState_name, "SEGMENT_STATE_")
	byState(descFiles, st.SegmentFiles[:], fsmpb.SegmentState_name, "SEGMENT_STATE_")
	byState(descSnapshots, st.Snapshots[:], fsmpb.SnapshotState_name, "SNAPSHOT_STATE_")
	gauge(descSnapshotsBroken, float64(st.SnapshotsBroken))
	byState(descRestoreJobs, st.RestoreJobs[:], fsmpb.RestoreState_name, "RESTORE_STATE_")

	seconds := func(ns int64) float64 { return float64(ns) / 1e9 }
	for _, p := range n.fsm.View().Policies() {
		st := p.GetStatus()
		ch <- prometheus.MustNewConstMetric(descPolicySnapshots, prometheus.CounterValue, float64(st.GetSnapshotsTaken()), p.Name, "taken")
		ch <- prometheus.MustNewConstMetric(descPolicySnapshots, prometheus.CounterValue, float64(st.GetSnapshotsFailed()), p.Name, "failed")
		ch <- prometheus.MustNewConstMetric(descPolicySnapshots, prometheus.CounterValue, float64(st.GetSnapshotsDeleted()), p.Name, "deleted")
		gauge(descPolicyLastSuccess, seconds(st.GetLastSuccessAt()), p.Name)
		gauge(descPolicyLastFailure, seconds(st.GetLastFailureAt()), p.Name)
		next := 0.0
		if at := policy.NextRun(p); !at.IsZero() {
			next = seconds(at.UnixNano())
		}
		gauge(descPolicyNextRun, next, p.Name)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// dutyNames are the background duties the guard knows (the label values of
// snapkeep_duty_panics_total, present from the start).
var dutyNames = []string{
	// every node (startNodeDuties)
	"leadership", "register-node", "health", "clock-sample", "restore-watch", "restore-executor", "membership",
	// the leader (leaderDuties)
	"allocation-expiry", "finisher", "restore-coordinator", "policies", "policy-exports", "gc", "backup", "scrubber",
}

func (m *nodeMetrics) snapshotVerified(outcome fsmpb.SnapshotVerifyOutcome, deep bool) {
	depth := "sizes"
	if deep {
		depth = "deep"
	}
	m.verifications.WithLabelValues(strings.ToLower(strings.TrimPrefix(outcome.String(), "SNAPSHOT_VERIFY_OUTCOME_")), depth).Inc()
}

func (m *nodeMetrics) policyRan(kind, outcome string) {
	m.policyProposals.WithLabelValues(kind, outcome).Inc()
}

func (m *nodeMetrics) dutyPanicked(name string) { m.dutyPanics.WithLabelValues(name).Inc() }
