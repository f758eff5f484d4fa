package api

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/policy"
)

// policiesService implements the public Policies API. Policies live in the catalog;
// the leader's scheduler (server/policy) runs them.
type policiesService struct {
	pb.UnimplementedPoliciesServer
	*services
}

// fromPolicy converts the API's settings of a policy (read-only fields ignored).
func fromPolicy(p *pb.Policy) (*fsmpb.Policy, error) {
	if p == nil {
		return nil, status.Error(codes.InvalidArgument, "a policy is required")
	}
	out := &fsmpb.Policy{
		Name: p.Name, Description: p.Description, Database: p.Database, Collections: p.Collections,
		CollectionGlob: p.CollectionGlob, NameTemplate: p.NameTemplate, Labels: p.Labels, Enabled: p.Enabled,
		Schedule: &fsmpb.PolicySchedule{Cron: p.Cron, TimeZone: p.TimeZone, Interval: p.IntervalMs * int64(time.Millisecond)},
	}
	out.Retention = fromRetention(p.Retention)
	out.ExportRepository, out.ExportRetention = p.ExportRepository, fromRetention(p.ExportRetention)
	return out, nil
}

func fromRetention(r *pb.PolicyRetention) *fsmpb.PolicyRetention {
	if r == nil {
		return nil
	}
	return &fsmpb.PolicyRetention{ExpireAfter: r.ExpireAfterMs * int64(time.Millisecond), MinCount: r.MinCount,
		MaxCount: r.MaxCount, Interval: r.IntervalMs * int64(time.Millisecond)}
}

func toRetention(r *fsmpb.PolicyRetention) *pb.PolicyRetention {
	if r == nil {
		return nil
	}
	return &pb.PolicyRetention{ExpireAfterMs: r.ExpireAfter / int64(time.Millisecond), MinCount: r.MinCount,
		MaxCount: r.MaxCount, IntervalMs: r.Interval / int64(time.Millisecond)}
}

func toPolicy(p *fsmpb.Policy) *pb.Policy {
	s := p.GetSchedule()
	out := &pb.Policy{
		Name: p.Name, Description: p.Description, Database: p.Database, Collections: p.Collections,
		CollectionGlob: p.CollectionGlob, Cron: s.GetCron(), TimeZone: s.GetTimeZone(), IntervalMs: s.GetInterval() / int64(time.Millisecond),
		NameTemplate: p.NameTemplate, Labels: p.Labels, Enabled: p.Enabled,
		Id: p.Id, Revision: p.Revision, CreatedAtUnixMs: unixMS(p.CreatedAt), UpdatedAtUnixMs: unixMS(p.UpdatedAt),
	}
	out.Retention = toRetention(p.Retention)
	out.ExportRepository, out.ExportRetention = p.ExportRepository, toRetention(p.ExportRetention)
	st := p.GetStatus()
	out.Status = &pb.PolicyStatus{
		Runs: st.GetRuns(), LastRunAtUnixMs: unixMS(st.GetLastRunAt()), LastRunDueUnixMs: unixMS(st.GetLastRunDue()),
		SnapshotsTaken: st.GetSnapshotsTaken(), SnapshotsFailed: st.GetSnapshotsFailed(), SnapshotsDeleted: st.GetSnapshotsDeleted(),
		LastSuccessAtUnixMs: unixMS(st.GetLastSuccessAt()), LastSuccess: st.GetLastSuccess(),
		LastFailureAtUnixMs: unixMS(st.GetLastFailureAt()), LastFailure: st.GetLastFailure(),
		LastRetentionAtUnixMs: unixMS(st.GetLastRetentionAt()), LastDueUnixMs: unixMS(p.LastDue),
		ExportsStarted: st.GetExportsStarted(), LastExportAtUnixMs: unixMS(st.GetLastExportAt()),
		ExportsExpired: st.GetExportsExpired(), LastExportExpiryAtUnixMs: unixMS(st.GetLastExportExpiryAt()),
	}
	if next := policy.NextRun(p); !next.IsZero() {
		out.Status.NextRunUnixMs = next.UnixMilli()
	}
	return out
}

// checkSchedule checks what only a node can: the time zone loads, the schedule
// fires, and two due times in a row get different snapshot names.
func checkSchedule(p *fsmpb.Policy, now time.Time) error {
	if err := fsm.ValidatePolicy(p); err != nil {
		return err
	}
	probe := proto.CloneOf(p)
	probe.ScheduleFrom = now.UnixNano()
	sched, err := policy.Compile(probe)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "policy %q: %v", p.Name, err)
	}
	first := sched.Next(now)
	if first.IsZero() {
		return status.Errorf(codes.InvalidArgument, "policy %q: cron %q never fires in the next five years", p.Name, p.Schedule.Cron)
	}
	second := sched.Next(first)
	a, err := sched.SnapshotName(p, first)
	if err != nil {
		return err
	}
	if b, err := sched.SnapshotName(p, second); err == nil && a == b {
		return status.Errorf(codes.InvalidArgument,
			"policy %q: the name template %q renders %q for both %s and %s: put finer time fields in it (e.g. {15.04.05})",
			p.Name, p.NameTemplate, a, first.Format(time.RFC3339), second.Format(time.RFC3339))
	}
	return nil
}

func (s *policiesService) CreatePolicy(ctx context.Context, req *pb.CreatePolicyRequest) (*pb.CreatePolicyResponse, error) {
	p, err := fromPolicy(req.Policy)
	if err != nil {
		return nil, err
	}
	if err := checkSchedule(p, s.cfg.Now()); err != nil {
		return nil, err
	}
	var out fsmpb.PolicyResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.PolicyPut{Policy: p, Create: true}, &out); err != nil {
		return nil, err
	}
	s.b.KickPolicies()
	return &pb.CreatePolicyResponse{Policy: toPolicy(out.Policy), Existed: out.Existed}, nil
}

func (s *policiesService) UpdatePolicy(ctx context.Context, req *pb.UpdatePolicyRequest) (*pb.UpdatePolicyResponse, error) {
	p, err := fromPolicy(req.Policy)
	if err != nil {
		return nil, err
	}
	if err := checkSchedule(p, s.cfg.Now()); err != nil {
		return nil, err
	}
	revision := req.Revision
	if revision == 0 {
		v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
		if err != nil {
			return nil, err
		}
		cur, err := v.Policy(p.Name)
		if err != nil {
			return nil, err
		}
		revision = cur.Revision
	}
	var out fsmpb.PolicyResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.PolicyPut{Policy: p, Revision: revision}, &out); err != nil {
		return nil, err
	}
	s.b.KickPolicies()
	return &pb.UpdatePolicyResponse{Policy: toPolicy(out.Policy)}, nil
}

func (s *policiesService) DeletePolicy(ctx context.Context, req *pb.DeletePolicyRequest) (*pb.DeletePolicyResponse, error) {
	if err := fsm.ValidateName("policy", req.Name); err != nil {
		return nil, err
	}
	var out fsmpb.PolicyResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.PolicyDelete{Name: req.Name}, &out); err != nil {
		return nil, err
	}
	return &pb.DeletePolicyResponse{Existed: out.Existed}, nil
}

// policy reads the policy name at the given consistency, with the view it was read in.
func (s *policiesService) policy(ctx context.Context, c pb.ReadConsistency, name string) (*fsm.View, *fsmpb.Policy, error) {
	v, err := s.b.ReadView(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	p, err := v.Policy(name)
	if err != nil {
		return nil, nil, err
	}
	return v, p, nil
}

func (s *policiesService) ListPolicies(ctx context.Context, req *pb.ListPoliciesRequest) (*pb.ListPoliciesResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	out := &pb.ListPoliciesResponse{}
	for _, p := range v.Policies() {
		out.Policies = append(out.Policies, toPolicy(p))
	}
	return out, nil
}

func (s *policiesService) DescribePolicy(ctx context.Context, req *pb.DescribePolicyRequest) (*pb.DescribePolicyResponse, error) {
	_, p, err := s.policy(ctx, req.Consistency, req.Name)
	if err != nil {
		return nil, err
	}
	return &pb.DescribePolicyResponse{Policy: toPolicy(p)}, nil
}

func (s *policiesService) ExecutePolicy(ctx context.Context, req *pb.ExecutePolicyRequest) (*pb.ExecutePolicyResponse, error) {
	v, p, err := s.policy(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, req.Name)
	if err != nil {
		return nil, err
	}
	out := &fsmpb.PolicyRunResponse{}
	retried, err := rememberedRun(v, req.RequestId, p.Name, out)
	if err != nil {
		return nil, err
	}
	if !retried {
		sched, err := policy.Compile(p)
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "policy %q: %v", p.Name, err)
		}
		base, err := sched.SnapshotName(p, s.cfg.Now())
		if err != nil {
			return nil, err
		}
		name, err := manualRunName(v, p, base)
		if err != nil {
			return nil, err
		}
		cmd := &fsmpb.PolicyRun{Policy: p.Name, Revision: p.Revision, SnapshotName: name,
			MaxPerCollection: uint32(s.cfg.SnapshotsPerCollection), PendingTimeout: int64(s.cfg.SnapshotPendingTimeout)}
		if err := s.b.Propose(ctx, req.RequestId, cmd, out); err != nil && !s.answeredByFirstRun(ctx, req.RequestId, p.Name, out) {
			return nil, err
		}
	}
	s.b.KickFinisher()
	resp := &pb.ExecutePolicyResponse{Policy: toPolicy(out.Policy)}
	for _, r := range out.Results {
		resp.Results = append(resp.Results, &pb.PolicyRunResult{Collection: r.Collection, SnapshotId: r.SnapshotId, SnapshotName: r.SnapshotName, Error: r.Error})
	}
	return resp, nil
}

// ManualRunSuffix ends the snapshot names of a policy's runs on request: the template
// rendered at the call's time + "-manual" (+ "-2", "-3", … when the policy already has
// that name), so a run on request never takes the name a scheduled run of the same
// due time renders, nor fails on one it took.
const ManualRunSuffix = "-manual"

// manualRunName is the name a run on request of p takes: base (the template rendered
// now) with ManualRunSuffix, numbered past the names p's snapshots already have.
func manualRunName(v *fsm.View, p *fsmpb.Policy, base string) (string, error) {
	taken := map[string]bool{}
	v.EachPolicySnapshot(p.Id, func(snap *fsmpb.Snapshot) bool {
		taken[snap.Name] = true
		return true
	})
	name := base + ManualRunSuffix
	for n := 2; taken[name]; n++ {
		name = base + ManualRunSuffix + "-" + strconv.Itoa(n)
	}
	if err := fsm.ValidateSnapshotName(name); err != nil {
		return "", status.Errorf(codes.FailedPrecondition, "policy %q: a run on request would be named %q: %v; shorten the name template", p.Name, name, err)
	}
	return name, nil
}

// rememberedRun answers a retried run on request of policy name (its request id
// already applied) with its first result: the name rendered now could differ from the
// first call's, which the deduplication window would refuse as another request under
// the same id. An id used for another policy's run is left for the window to refuse.
func rememberedRun(v *fsm.View, requestID, name string, out *fsmpb.PolicyRunResponse) (bool, error) {
	if requestID == "" {
		return false, nil
	}
	rec := v.Request(requestID)
	if rec == nil || rec.Type != fsmpb.CommandType_COMMAND_TYPE_POLICY_RUN {
		return false, nil
	}
	if err := fsm.ResultError(rec.Result); err != nil {
		return true, err
	}
	first := &fsmpb.PolicyRunResponse{}
	if err := proto.Unmarshal(rec.Result.GetResponse(), first); err != nil {
		return true, status.Errorf(codes.Internal, "decode the remembered result of request %q: %v", requestID, err)
	}
	if first.Policy.GetName() != name {
		return false, nil
	}
	proto.Reset(out)
	proto.Merge(out, first)
	return true, nil
}

// answeredByFirstRun fills out with the first result of a run on request whose
// proposal failed, when its request id is in the window as a successful run of policy
// name: a retry that raced its first call (neither applied when both looked in the
// window) rendered its own name and the window refused it as another request under
// the same id, or the proposal reported a failure after its entry was applied.
func (s *policiesService) answeredByFirstRun(ctx context.Context, requestID, name string, out *fsmpb.PolicyRunResponse) bool {
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return false
	}
	again, err := rememberedRun(v, requestID, name, out)
	return again && err == nil
}

func (s *policiesService) PreviewPolicyRetention(ctx context.Context, req *pb.PreviewPolicyRetentionRequest) (*pb.PreviewPolicyRetentionResponse, error) {
	v, p, err := s.policy(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, req.Name)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := &pb.PreviewPolicyRetentionResponse{AtUnixMs: now.UnixMilli()}
	for _, d := range v.RetentionPlan(p, now.UnixNano()) {
		out.Decisions = append(out.Decisions, &pb.RetentionDecision{SnapshotId: d.Snapshot.Id, Collection: d.Snapshot.CollectionName,
			Snapshot: d.Snapshot.Name, CreatedAtUnixMs: unixMS(d.Snapshot.CreatedAt), Delete: d.Delete, Reason: d.Reason})
	}
	return out, nil
}

// Holds, served by the Snapshots service.

func (s *snapshotsService) AddSnapshotHold(ctx context.Context, req *pb.AddSnapshotHoldRequest) (*pb.AddSnapshotHoldResponse, error) {
	until := req.UntilUnixMs * int64(time.Millisecond)
	if err := fsm.ValidateHold(req.Reason, until, s.cfg.Now().UnixNano()); err != nil {
		return nil, err
	}
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	snap, err := v.SnapshotByName(req.Database, req.Collection, req.Name)
	if err != nil {
		return nil, err
	}
	var out fsmpb.SnapshotResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.SnapshotHoldAdd{SnapshotId: snap.Id, Reason: req.Reason, Until: until}, &out); err != nil {
		return nil, err
	}
	conv := s.convert(s.b.View(), out.Snapshot, false)
	return &pb.AddSnapshotHoldResponse{Hold: conv.Holds[len(conv.Holds)-1], Snapshot: conv}, nil
}

func (s *snapshotsService) RemoveSnapshotHold(ctx context.Context, req *pb.RemoveSnapshotHoldRequest) (*pb.RemoveSnapshotHoldResponse, error) {
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	snap, err := v.SnapshotByName(req.Database, req.Collection, req.Name)
	if err != nil {
		return nil, err
	}
	var out fsmpb.SnapshotResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.SnapshotHoldRemove{SnapshotId: snap.Id, HoldId: req.HoldId}, &out); err != nil {
		return nil, err
	}
	return &pb.RemoveSnapshotHoldResponse{Snapshot: s.convert(s.b.View(), out.Snapshot, false)}, nil
}

// toHolds converts a snapshot's holds, marking those past their until.
func toHolds(holds []*fsmpb.SnapshotHold, now int64) []*pb.SnapshotHold {
	var out []*pb.SnapshotHold
	for _, h := range holds {
		out = append(out, &pb.SnapshotHold{Id: h.Id, Reason: h.Reason, UntilUnixMs: unixMS(h.Until), AddedAtUnixMs: unixMS(h.AddedAt),
			Active: h.Until == 0 || h.Until > now})
	}
	return out
}
