package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/analyze"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/api"
)

// Storage analysis (docs/OPERATIONS.md, "Analyzing storage"): the serving node has
// every node of the Raft configuration run the checks of objstore/analyze at once
// (Internal.AnalyzeStorage, phase LOCAL), then the cross-node checks (every node writes
// an object and one shared key at once, then every node reads and lists them), and
// deletes the cross-node objects.

const (
	// analyzeNodeTimeout bounds one node's phase; analyzeCheckTimeout each check.
	analyzeNodeTimeout  = 3 * time.Minute
	analyzeCheckTimeout = 30 * time.Second
	// analyzePrefix is where analyses write, under the root or repository prefix; GC
	// never scans it (it is not one of snapkeep's namespaces).
	analyzePrefix = ".snapkeep-analyze/"
)

func (n *Node) registerStorage() {
	pb.RegisterStorageServer(n.grpcServer, &storageService{n: n})
}

type storageService struct {
	pb.UnimplementedStorageServer
	n *Node
}

// AnalyzeStorage runs the analysis from every node.
func (s *storageService) AnalyzeStorage(ctx context.Context, req *pb.AnalyzeStorageRequest) (*pb.AnalyzeStorageResponse, error) {
	n := s.n
	var spec *pb.RepositorySpec
	target := "the cluster's bucket"
	if req.Repository != "" {
		v, err := n.readView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
		if err != nil {
			return nil, err
		}
		r, err := v.Repository(req.Repository)
		if err != nil {
			return nil, err
		}
		if r.ReadOnly {
			return nil, status.Errorf(codes.FailedPrecondition, "repository %q is read-only and the analysis writes objects; analyze it from the cluster that writes it", r.Name)
		}
		spec = api.RepositorySpecOf(r)
		target = fmt.Sprintf("repository %s (bucket %s)", r.Name, r.Bucket)
	} else {
		if n.cfg.Storage.Bucket == "" && n.objects == nil {
			return nil, status.Error(codes.FailedPrecondition, "no object storage configured: start the nodes with --s3-bucket (and --s3-endpoint)")
		}
		if n.cfg.Storage.Bucket != "" {
			target = "bucket " + n.cfg.Storage.Bucket
		}
	}
	servers, err := n.analysisServers()
	if err != nil {
		return nil, err
	}
	run := repository.NewID()
	out := &pb.AnalyzeStorageResponse{Target: target, RunId: run}

	// Every node's own checks, at once.
	local := n.fanOut(ctx, servers, &internalv1.AnalyzeStorageNodeRequest{Repository: spec, RunId: run, Phase: internalv1.AnalyzePhase_ANALYZE_PHASE_LOCAL})
	var all [][]analyze.Result
	for i, srv := range servers {
		res := local[i]
		node := &pb.NodeStorageAnalysis{Node: srv.id}
		if res.err != nil {
			node.Error = res.err.Error()
			out.Errors = true
		} else if res.resp.GetLocal() != nil {
			node = res.resp.Local
			node.Node = srv.id
			all = append(all, resultsOf(node.Checks))
		}
		out.Nodes = append(out.Nodes, node)
	}

	// Cross-node checks, with two or more nodes.
	if len(servers) > 1 {
		cross, err := n.crossAnalysis(ctx, servers, spec, run)
		if err != nil {
			cross = append(cross, &pb.StorageCheck{Name: "cross-node", Outcome: pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_ERROR, Detail: err.Error()})
		}
		out.CrossNode = cross
		all = append(all, resultsOf(cross))
	}
	for _, row := range analyze.FeatureMap(all...) {
		out.Features = append(out.Features, &pb.StorageFeature{Behaviour: row.Behaviour, Feature: row.Feature, Outcome: outcomeToPB(row.Outcome), Uses: row.Uses})
	}
	for _, rs := range all {
		for _, r := range rs {
			switch r.Outcome {
			case analyze.Unsafe:
				out.Unsafe = true
			case analyze.Error:
				out.Errors = true
			}
		}
	}
	return out, nil
}

// crossAnalysis writes from every node at once, then reads from every node, and
// deletes what was written.
func (n *Node) crossAnalysis(ctx context.Context, servers []analysisServer, spec *pb.RepositorySpec, run string) ([]*pb.StorageCheck, error) {
	store, _, base, err := n.analysisStore(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		if s, ok := store.(*objstore.S3); ok && s != n.objects {
			_ = s.Close()
		}
	}()
	prefix := base + analyzePrefix + run + "/cross/"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := analyze.DeletePrefix(cctx, store, prefix); err != nil {
			n.logger.Warn("storage analysis: cannot delete the cross-node objects", "prefix", prefix, "err", err)
		}
	}()
	writes := n.fanOut(ctx, servers, &internalv1.AnalyzeStorageNodeRequest{Repository: spec, RunId: run, Phase: internalv1.AnalyzePhase_ANALYZE_PHASE_CROSS_WRITE})
	read := &internalv1.AnalyzeStorageNodeRequest{Repository: spec, RunId: run, Phase: internalv1.AnalyzePhase_ANALYZE_PHASE_CROSS_READ}
	var failed []string
	for i, w := range writes {
		if w.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", servers[i].id, w.err))
			continue
		}
		read.Written = append(read.Written, w.resp.Own)
		read.Shared = append(read.Shared, w.resp.Shared)
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("cross-node writes failed: %s", strings.Join(failed, "; "))
	}
	reads := n.fanOut(ctx, servers, read)
	var out []*pb.StorageCheck
	seen := map[string]uint32{}
	for i, r := range reads {
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", servers[i].id, r.err))
			continue
		}
		for _, c := range r.resp.Cross {
			c.Name = c.Name + " (" + servers[i].id + ")"
			out = append(out, c)
		}
		if r.resp.SharedRead {
			seen[servers[i].id] = r.resp.SharedCrc32C
		}
	}
	if len(seen) > 1 {
		out = append(out, checkToPB(analyze.SharedAgreement(seen)))
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("cross-node reads failed: %s", strings.Join(failed, "; "))
	}
	return out, nil
}

type analysisServer struct {
	id, addr string // addr empty for this node
}

// analysisServers are the servers of the Raft configuration with their gRPC
// addresses, sorted by id.
func (n *Node) analysisServers() ([]analysisServer, error) {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, raftError(err)
	}
	registered := map[string]string{}
	for _, node := range n.fsm.View().Nodes() {
		registered[node.Id] = node.GrpcAddr
	}
	var out []analysisServer
	for _, srv := range future.Configuration().Servers {
		id := string(srv.ID)
		if id == n.cfg.NodeID {
			out = append(out, analysisServer{id: id})
			continue
		}
		if registered[id] == "" {
			return nil, status.Errorf(codes.Unavailable, "node %s has not registered its gRPC address yet, so it cannot analyze the storage; retry shortly", id)
		}
		out = append(out, analysisServer{id: id, addr: registered[id]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

type nodeAnswer struct {
	resp *internalv1.AnalyzeStorageNodeResponse
	err  error
}

// fanOut sends req to every server at once (this node answers itself).
func (n *Node) fanOut(ctx context.Context, servers []analysisServer, req *internalv1.AnalyzeStorageNodeRequest) []nodeAnswer {
	out := make([]nodeAnswer, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			nctx, cancel := context.WithTimeout(ctx, analyzeNodeTimeout)
			defer cancel()
			if srv.addr == "" {
				out[i].resp, out[i].err = n.analyzeHere(nctx, req)
				if out[i].err != nil {
					out[i].err = errors.New(status.Convert(out[i].err).Message())
				}
				return
			}
			conn, err := n.peers.get(srv.addr)
			if err == nil {
				out[i].resp, err = internalv1.NewInternalClient(conn).AnalyzeStorage(nctx, req)
			}
			if err != nil {
				out[i].err = fmt.Errorf("cannot ask the node: %s", status.Convert(err).Message())
			}
		})
	}
	wg.Wait()
	return out
}

// analysisStore is a fresh client for the bucket analyzed (so no wrapper of the
// node's own store is in the way), its settings, and the base prefix under which
// .snapkeep-analyze/ goes. Without S3 settings (a node given only a Store), the node's
// own store.
func (n *Node) analysisStore(ctx context.Context, spec *pb.RepositorySpec) (objstore.Store, objstore.S3Config, string, error) {
	if spec != nil {
		r := api.RepositoryRecord(spec)
		if r.ReadOnly {
			return nil, objstore.S3Config{}, "", status.Errorf(codes.FailedPrecondition, "repository %q is read-only", r.Name)
		}
		cfg, err := n.repos.S3Config(r)
		if err != nil {
			return nil, objstore.S3Config{}, "", status.Errorf(codes.FailedPrecondition, "repository %q on node %s: %v", r.Name, n.cfg.NodeID, err)
		}
		s, err := objstore.NewS3(ctx, cfg)
		if err != nil {
			return nil, objstore.S3Config{}, "", status.Errorf(codes.FailedPrecondition, "repository %q: %v", r.Name, err)
		}
		return s, cfg, basePrefix(r.Prefix), nil
	}
	if n.cfg.Storage.Bucket != "" {
		s, err := objstore.NewS3(ctx, n.cfg.Storage)
		if err != nil {
			return nil, objstore.S3Config{}, "", status.Errorf(codes.FailedPrecondition, "object storage: %v", err)
		}
		return s, n.cfg.Storage, basePrefix(string(n.root)), nil
	}
	st, err := n.objectStore()
	if err != nil {
		return nil, objstore.S3Config{}, "", status.Error(codes.FailedPrecondition, err.Error())
	}
	return st, objstore.S3Config{}, basePrefix(string(n.root)), nil
}

func basePrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// analyzeHere runs one phase of an analysis on this node.
func (n *Node) analyzeHere(ctx context.Context, req *internalv1.AnalyzeStorageNodeRequest) (*internalv1.AnalyzeStorageNodeResponse, error) {
	if req.RunId == "" || strings.ContainsAny(req.RunId, "/") {
		return nil, status.Error(codes.InvalidArgument, "an analysis needs a run id without '/'")
	}
	store, cfg, base, err := n.analysisStore(ctx, req.Repository)
	if err != nil {
		return nil, err
	}
	if s, ok := store.(*objstore.S3); ok && s != n.objects {
		defer s.Close()
	}
	node := n.cfg.NodeID
	cross := base + analyzePrefix + req.RunId + "/cross/"
	switch req.Phase {
	case internalv1.AnalyzePhase_ANALYZE_PHASE_LOCAL:
		prefix := base + analyzePrefix + req.RunId + "/nodes/" + node + "/"
		rep, err := analyze.Run(ctx, analyze.Target{Store: store, Prefix: prefix, Config: cfg}, analyze.Options{CheckTimeout: analyzeCheckTimeout})
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		out := &pb.NodeStorageAnalysis{Node: node, Prefix: prefix, CleanupError: rep.CleanupError}
		for _, r := range rep.Results {
			out.Checks = append(out.Checks, checkToPB(r))
		}
		for _, o := range rep.Ops {
			out.Ops = append(out.Ops, &pb.StorageOpStats{Op: o.Op, Count: uint32(o.Count), Bytes: uint64(max(o.Bytes, 0)),
				MinUs: o.Min.Microseconds(), P50Us: o.P50.Microseconds(), MaxUs: o.Max.Microseconds(), TotalUs: o.Total.Microseconds()})
		}
		return &internalv1.AnalyzeStorageNodeResponse{Local: out}, nil
	case internalv1.AnalyzePhase_ANALYZE_PHASE_CROSS_WRITE:
		own, shared, err := analyze.CrossWrite(ctx, store, cross, node)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "cross-node write on %s: %v", node, err)
		}
		return &internalv1.AnalyzeStorageNodeResponse{Own: objectToPB(own), Shared: objectToPB(shared)}, nil
	case internalv1.AnalyzePhase_ANALYZE_PHASE_CROSS_READ:
		for _, o := range append(append([]*internalv1.CrossObject{}, req.Written...), req.Shared...) {
			if !strings.HasPrefix(o.GetKey(), cross) {
				return nil, status.Errorf(codes.InvalidArgument, "cross-node object %q is not under the run's prefix %q", o.GetKey(), cross)
			}
		}
		results, crc, ok := analyze.CrossRead(ctx, store, cross, node, objectsOf(req.Written), objectsOf(req.Shared))
		out := &internalv1.AnalyzeStorageNodeResponse{SharedRead: ok, SharedCrc32C: crc}
		for _, r := range results {
			out.Cross = append(out.Cross, checkToPB(r))
		}
		return out, nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "unknown analysis phase %v", req.Phase)
}

func objectToPB(o analyze.Object) *internalv1.CrossObject {
	return &internalv1.CrossObject{Node: o.Node, Key: o.Key, Size: o.Size, Crc32C: o.CRC32C}
}

func objectsOf(in []*internalv1.CrossObject) []analyze.Object {
	out := make([]analyze.Object, 0, len(in))
	for _, o := range in {
		out = append(out, analyze.Object{Node: o.GetNode(), Key: o.GetKey(), Size: o.GetSize(), CRC32C: o.GetCrc32C()})
	}
	return out
}

func checkToPB(r analyze.Result) *pb.StorageCheck {
	return &pb.StorageCheck{Name: r.Name, Outcome: outcomeToPB(r.Outcome), Detail: r.Detail, Feature: r.Feature, Fallback: r.Fallback, ElapsedUs: r.Elapsed.Microseconds()}
}

func resultsOf(checks []*pb.StorageCheck) []analyze.Result {
	out := make([]analyze.Result, 0, len(checks))
	for _, c := range checks {
		name := c.Name
		if i := strings.Index(name, " ("); i > 0 {
			name = name[:i] // cross-node checks name the node that read
		}
		out = append(out, analyze.Result{Name: name, Outcome: outcomeFromPB(c.Outcome), Detail: c.Detail, Feature: c.Feature, Fallback: c.Fallback})
	}
	return out
}

func outcomeToPB(o analyze.Outcome) pb.StorageCheckOutcome {
	switch o {
	case analyze.OK:
		return pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_OK
	case analyze.Unsupported:
		return pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_UNSUPPORTED
	case analyze.Unsafe:
		return pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_UNSAFE
	}
	return pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_ERROR
}

func outcomeFromPB(o pb.StorageCheckOutcome) analyze.Outcome {
	switch o {
	case pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_OK:
		return analyze.OK
	case pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_UNSUPPORTED:
		return analyze.Unsupported
	case pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_UNSAFE:
		return analyze.Unsafe
	}
	return analyze.Error
}
