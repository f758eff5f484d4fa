package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HTTPConfig configures the node's operations endpoint: Prometheus metrics, health and,
// when enabled, pprof.
type HTTPConfig struct {
	// Addr is where the HTTP server listens ("host:port"); empty turns it off.
	// Listener, when set, is used as is (tests).
	Addr     string
	Listener net.Listener
	// EnablePprof serves /debug/pprof/ (off by default: profiles expose internals and
	// cost CPU while they run).
	EnablePprof bool
}

// Health thresholds.
const (
	// healthMaxContact is how long a follower may go without hearing from the leader.
	healthMaxContact = 5 * time.Second
	// healthMaxApplyLag is how many committed entries may wait to be applied.
	healthMaxApplyLag = 1000
	// healthInterval is how often the gRPC health status is recomputed.
	healthInterval = 500 * time.Millisecond
	// defaultHealthMaxLag is how many entries a node may be behind the leader's
	// commit index (Config.HealthMaxLag).
	defaultHealthMaxLag = 1000
	// healthLogErrorWindow is how long a Raft log write error keeps the node unhealthy
	// after the error (longer while writes keep failing).
	healthLogErrorWindow = 30 * time.Second
	// healthNoLeaderGrace is how long a node may know no leader (an election) before
	// it refuses client calls.
	healthNoLeaderGrace = 5 * time.Second
)

// Reasons a node is unhealthy, as /health's "reasons" and the reason label of
// snapkeep_node_unhealthy_reason name them.
const (
	reasonLogWrite       = "log_write_error"
	reasonBehindLeader   = "behind_leader"
	reasonNoLeader       = "no_leader"
	reasonLeaderContact  = "leader_contact"
	reasonLeaderNotReady = "leader_not_ready"
	reasonRaftState      = "raft_state"
	reasonApplyLag       = "apply_lag"
)

var healthReasons = []string{reasonLogWrite, reasonBehindLeader, reasonNoLeader, reasonLeaderContact,
	reasonLeaderNotReady, reasonRaftState, reasonApplyLag}

// Health is a node's health, as /health answers it.
type Health struct {
	Healthy bool `json:"healthy"`
	// Status is "ok", "degraded" (healthy, but Degraded says what needs an
	// operator) or "unavailable".
	Status string `json:"status"`
	Node   string `json:"node"`
	// Role is Raft's state: leader, follower, candidate or shutdown.
	Role       string `json:"role"`
	Leader     string `json:"leader"`
	LeaderAddr string `json:"leader_grpc_addr,omitempty"`
	Term       uint64 `json:"term"`
	// CommitIndex and AppliedIndex are Raft's; FSMAppliedIndex is the last command
	// the state machine applied.
	CommitIndex     uint64 `json:"commit_index"`
	AppliedIndex    uint64 `json:"applied_index"`
	FSMAppliedIndex uint64 `json:"fsm_applied_index"`
	// LastContactMS is the time since the leader was last heard from (0 on the
	// leader, -1 when never since the node started).
	LastContactMS int64 `json:"last_contact_ms"`
	// LeaderCommitIndex is the leader's commit index as this node last learned it
	// (0 when unknown).
	LeaderCommitIndex uint64 `json:"leader_commit_index"`
	// LogWriteError is the Raft log's last write error while it counts.
	LogWriteError string `json:"log_write_error,omitempty"`
	// Problems says why the node is not healthy; Reasons are the same as codes.
	Problems []string `json:"problems,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`
	// problemReasons is each problem's reason, in the order of Problems.
	problemReasons []string
	// Degraded says what is wrong with the data while the node serves: committed
	// snapshots whose last verification found lost data or a damaged manifest.
	Degraded []string `json:"degraded,omitempty"`
}

// health checks the node: it is a leader that has applied every entry of earlier terms,
// or a follower that heard from the leader within healthMaxContact; and it has applied
// all but healthMaxApplyLag of the committed entries.
func (n *Node) health() Health {
	state := n.raft.State()
	_, leaderID := n.raft.LeaderWithID()
	h := Health{
		Node:            n.cfg.NodeID,
		Role:            roleName(state),
		Leader:          string(leaderID),
		Term:            n.raft.CurrentTerm(),
		CommitIndex:     n.raft.CommitIndex(),
		AppliedIndex:    n.raft.AppliedIndex(),
		FSMAppliedIndex: n.fsm.AppliedIndex(),
	}
	if h.Leader != "" {
		h.LeaderAddr, _ = n.leaderGRPCAddr()
	}
	problem := func(reason, format string, args ...any) {
		h.Problems = append(h.Problems, fmt.Sprintf(format, args...))
		h.problemReasons = append(h.problemReasons, reason)
		if !slices.Contains(h.Reasons, reason) {
			h.Reasons = append(h.Reasons, reason)
		}
	}
	var sinceContact time.Duration
	if state != raft.Leader {
		h.LastContactMS = -1
		if last := n.raft.LastContact(); !last.IsZero() {
			sinceContact = time.Since(last)
			h.LastContactMS = sinceContact.Milliseconds()
		}
	}
	switch state {
	case raft.Leader:
		if !n.isLeaderReady() {
			problem(reasonLeaderNotReady, "leader of term %d has not yet applied the entries of earlier terms", h.Term)
		}
	case raft.Follower:
		if h.LastContactMS < 0 {
			problem(reasonLeaderContact, "has never heard from a leader")
		} else if sinceContact > healthMaxContact {
			problem(reasonLeaderContact, "last heard from the leader %v ago", sinceContact.Round(time.Millisecond))
		}
	default:
		problem(reasonRaftState, "raft state is %s", h.Role)
	}
	if h.Leader == "" {
		problem(reasonNoLeader, "no leader known")
	}
	if err, at := n.logWrites.recentError(healthLogErrorWindow); err != nil && !bugHealthyDisk {
		h.LogWriteError = err.Error()
		problem(reasonLogWrite, "cannot write the Raft log (disk full?): %v, %v ago", err, time.Since(at).Round(time.Millisecond))
	}
	if d, at := n.logWrites.recentSlowWrite(); d > 0 {
		h.Degraded = append(h.Degraded, fmt.Sprintf("a Raft log write took %v, %v ago: the disk is slow (every commit waits on the leader's)",
			d.Round(time.Millisecond), time.Since(at).Round(time.Second)))
	}
	h.LeaderCommitIndex = n.transport.LeaderCommitIndex()
	if state == raft.Leader {
		h.LeaderCommitIndex = h.CommitIndex
	}
	if h.LeaderCommitIndex > h.AppliedIndex+n.healthMaxLag() {
		problem(reasonBehindLeader, "%d entries behind the leader's commit index %d (limit %d)",
			h.LeaderCommitIndex-h.AppliedIndex, h.LeaderCommitIndex, n.healthMaxLag())
	}
	if h.CommitIndex > h.AppliedIndex+healthMaxApplyLag {
		problem(reasonApplyLag, "%d committed entries not yet applied", h.CommitIndex-h.AppliedIndex)
	}
	if broken := n.fsm.View().Stats().SnapshotsBroken; broken > 0 {
		h.Degraded = append(h.Degraded, fmt.Sprintf("%d committed snapshots failed their last verification (lost data or a manifest not repaired): snapkeep fsck lists them", broken))
	}
	h.Healthy = len(h.Problems) == 0
	switch {
	case !h.Healthy:
		h.Status = "unavailable"
	case len(h.Degraded) > 0:
		h.Status = "degraded"
	default:
		h.Status = "ok"
	}
	return h
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

// opsServer is the node's operations side: the gRPC health service and the HTTP server.
type opsServer struct {
	health *health.Server
	srv    *http.Server
	ln     net.Listener
	once   sync.Once
	// noLeaderSince is when the node last started to know no leader (zero while it
	// knows one); only the health goroutine touches it.
	noLeaderSince time.Time
}

// startOps registers the gRPC health service, keeps its status current, and starts
// the HTTP server when configured. Call it after the gRPC services are registered and
// before the gRPC server serves.
func (n *Node) startOps() error {
	ops := &opsServer{health: health.NewServer()}
	healthpb.RegisterHealthServer(n.grpcServer, ops.health)
	if cfg := n.cfg.HTTP; cfg.Addr != "" || cfg.Listener != nil {
		ops.ln = cfg.Listener
		if ops.ln == nil {
			var err error
			if ops.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
				return fmt.Errorf("listen on --http-addr %s: %w", cfg.Addr, err)
			}
		}
		ops.srv = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	n.ops = ops
	n.updateGRPCHealth() // then every healthInterval (server/leader.go)
	if ops.srv != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := ops.srv.Serve(ops.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.logger.Error("HTTP server stopped", "err", err)
			}
		}()
		n.logger.Info("serving metrics and health", "http", ops.ln.Addr().String(), "pprof", n.cfg.HTTP.EnablePprof)
	}
	return nil
}

// stopOps reports NOT_SERVING to gRPC health checks and stops the HTTP server
// (requests in flight get a moment to finish). Safe to call more than once.
func (n *Node) stopOps() {
	ops := n.ops
	if ops == nil {
		return
	}
	ops.once.Do(func() {
		ops.health.Shutdown()
		if ops.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := ops.srv.Shutdown(ctx); err != nil {
			ops.srv.Close() // a long pprof profile, say
		}
	})
}

// HTTPAddr is the address of the metrics and health endpoint, or "" when it is off.
func (n *Node) HTTPAddr() string {
	if n.ops == nil || n.ops.ln == nil {
		return ""
	}
	return n.ops.ln.Addr().String()
}

// updateGRPCHealth sets every service's serving status ("" is the whole node).
func (n *Node) updateGRPCHealth() {
	status := healthpb.HealthCheckResponse_NOT_SERVING
	h := n.health()
	n.updateHealthGate(h)
	if h.Healthy {
		status = healthpb.HealthCheckResponse_SERVING
	}
	services := []string{""}
	for name := range n.grpcServer.GetServiceInfo() {
		if name != healthpb.Health_ServiceDesc.ServiceName {
			services = append(services, name)
		}
	}
	sort.Strings(services)
	for _, s := range services {
		n.ops.health.SetServingStatus(s, status)
	}
}

// httpHandler serves /metrics, /health (also as /v1/health) and, when enabled,
// /debug/pprof/.
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{
		Registry:          n.metrics.reg,
		EnableOpenMetrics: true,
		ErrorLog:          promLogger{n},
	}))
	healthHandler := func(w http.ResponseWriter, _ *http.Request) {
		h := n.health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !h.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h)
	}
	mux.HandleFunc("GET /health", healthHandler)
	mux.HandleFunc("GET /v1/health", healthHandler)
	if n.cfg.HTTP.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "snapkeep node %s\n\n/metrics      Prometheus metrics\n/health       health (200 healthy, 503 not), JSON\n", n.cfg.NodeID)
		if n.cfg.HTTP.EnablePprof {
			fmt.Fprintln(w, "/debug/pprof/ profiles")
		}
	})
	return mux
}

// promLogger sends promhttp's errors to the node's log.
type promLogger struct{ n *Node }

func (l promLogger) Println(v ...any) { l.n.logger.Warn("metrics", "err", fmt.Sprint(v...)) }
