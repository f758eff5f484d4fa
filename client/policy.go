package client

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// PolicyOption builds a policy's settings for CreatePolicy and UpdatePolicy.
type PolicyOption struct {
	p *snapkeepv1.Policy
}

// NewPolicyOption is a policy named name taking snapshots named by template (Go time
// layouts in braces, rendered at the due time: "nightly-{2006.01.02-15.04}") of the
// "default" database's collections, enabled. Give it collections (WithCollections or
// WithCollectionGlob) and a schedule (WithCron or WithInterval).
func NewPolicyOption(name, template string) *PolicyOption {
	return &PolicyOption{p: &snapkeepv1.Policy{Name: name, NameTemplate: template, Enabled: true}}
}

// PolicyOptionFrom starts from an existing policy's settings (DescribePolicy), to
// change some and UpdatePolicy.
func PolicyOptionFrom(p *snapkeepv1.Policy) *PolicyOption {
	c := clone(p)
	c.Id, c.Revision, c.CreatedAtUnixMs, c.UpdatedAtUnixMs, c.Status = 0, 0, 0, 0, nil
	return &PolicyOption{p: c}
}

// WithNameTemplate replaces the snapshot name template ("nightly-{2006.01.02-15.04}").
func (o *PolicyOption) WithNameTemplate(template string) *PolicyOption {
	o.p.NameTemplate = template
	return o
}

// WithDatabase names the collections' database (default "default").
func (o *PolicyOption) WithDatabase(db string) *PolicyOption {
	o.p.Database = db
	return o
}

// WithCollections snapshots these collections by name.
func (o *PolicyOption) WithCollections(names ...string) *PolicyOption {
	o.p.Collections, o.p.CollectionGlob = append([]string(nil), names...), ""
	return o
}

// WithCollectionGlob snapshots every active collection whose name matches glob
// (path.Match; "*" for all).
func (o *PolicyOption) WithCollectionGlob(glob string) *PolicyOption {
	o.p.CollectionGlob, o.p.Collections = glob, nil
	return o
}

// WithCron schedules by a 5-field cron expression in an IANA time zone ("" is UTC).
func (o *PolicyOption) WithCron(expr, timeZone string) *PolicyOption {
	o.p.Cron, o.p.TimeZone, o.p.IntervalMs = expr, timeZone, 0
	return o
}

// WithInterval schedules every d (at least a second) from the policy's creation.
func (o *PolicyOption) WithInterval(d time.Duration) *PolicyOption {
	o.p.IntervalMs, o.p.Cron, o.p.TimeZone = d.Milliseconds(), "", ""
	return o
}

// WithRetention expires the policy's snapshots older than expireAfter (0: never by
// age) or beyond the newest maxCount (0: no limit) per collection, always keeping at
// least minCount.
func (o *PolicyOption) WithRetention(expireAfter time.Duration, minCount, maxCount uint32) *PolicyOption {
	if o.p.Retention == nil {
		o.p.Retention = &snapkeepv1.PolicyRetention{}
	}
	o.p.Retention.ExpireAfterMs, o.p.Retention.MinCount, o.p.Retention.MaxCount = expireAfter.Milliseconds(), minCount, maxCount
	return o
}

// WithRetentionInterval sets how often the leader checks the retention (default a
// minute).
func (o *PolicyOption) WithRetentionInterval(d time.Duration) *PolicyOption {
	if o.p.Retention == nil {
		o.p.Retention = &snapkeepv1.PolicyRetention{}
	}
	o.p.Retention.IntervalMs = d.Milliseconds()
	return o
}

// WithExport exports each snapshot taken, once committed, to a registered writable
// repository.
func (o *PolicyOption) WithExport(repository string) *PolicyOption {
	o.p.ExportRepository = repository
	return o
}

// WithExportRetention expires the exported copies in the repository: older than
// expireAfter (0: never by age) or beyond the newest maxCount (0: no limit) per
// collection, always keeping at least minCount; checked every interval (0: a minute).
// Freed objects are deleted by a repository GC the policy runs after expiring.
func (o *PolicyOption) WithExportRetention(expireAfter time.Duration, minCount, maxCount uint32, interval time.Duration) *PolicyOption {
	o.p.ExportRetention = &snapkeepv1.PolicyRetention{ExpireAfterMs: expireAfter.Milliseconds(), MinCount: minCount,
		MaxCount: maxCount, IntervalMs: interval.Milliseconds()}
	return o
}

// WithoutExportRetention drops the export retention (exported copies then stay).
func (o *PolicyOption) WithoutExportRetention() *PolicyOption {
	o.p.ExportRetention = nil
	return o
}

// WithLabels adds labels (merged with earlier ones) given to every snapshot taken.
func (o *PolicyOption) WithLabels(labels map[string]string) *PolicyOption {
	mergeProperties(&o.p.Labels, labels)
	return o
}

// WithDescription sets free text describing the policy (given to its snapshots).
func (o *PolicyOption) WithDescription(description string) *PolicyOption {
	o.p.Description = description
	return o
}

// WithEnabled enables or disables the schedule (a disabled policy can still be
// executed by hand; its retention goes on).
func (o *PolicyOption) WithEnabled(enabled bool) *PolicyOption {
	o.p.Enabled = enabled
	return o
}

// Policy returns the settings built so far (a copy).
func (o *PolicyOption) Policy() *snapkeepv1.Policy { return clone(o.p) }

// CreatePolicy creates a policy. Creating one identical to an existing policy
// succeeds (the response's Existed says so); other settings under its name fail with
// ErrAlreadyExists.
func (c *Client) CreatePolicy(ctx context.Context, opt *PolicyOption) (*snapkeepv1.CreatePolicyResponse, error) {
	if opt == nil {
		return nil, nilOption("CreatePolicy")
	}
	req := &snapkeepv1.CreatePolicyRequest{RequestId: requestID(ctx), Policy: clone(opt.p)}
	return invoke(ctx, c, "CreatePolicy", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CreatePolicyResponse, error) {
			return ep.policies.CreatePolicy(ctx, req, o...)
		})
}

// UpdatePolicy replaces a policy's settings. With revision (DescribePolicy's) the
// update fails with ErrFailedPrecondition if the policy changed since; 0 replaces
// whatever is current.
func (c *Client) UpdatePolicy(ctx context.Context, opt *PolicyOption, revision uint64) (*snapkeepv1.Policy, error) {
	if opt == nil {
		return nil, nilOption("UpdatePolicy")
	}
	req := &snapkeepv1.UpdatePolicyRequest{RequestId: requestID(ctx), Policy: clone(opt.p), Revision: revision}
	resp, err := invoke(ctx, c, "UpdatePolicy", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.UpdatePolicyResponse, error) {
			return ep.policies.UpdatePolicy(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetPolicy(), nil
}

// DeletePolicy forgets a policy; the snapshots it took stay. Deleting one that does
// not exist succeeds; the response's Existed says which happened.
func (c *Client) DeletePolicy(ctx context.Context, name string) (*snapkeepv1.DeletePolicyResponse, error) {
	req := &snapkeepv1.DeletePolicyRequest{RequestId: requestID(ctx), Name: name}
	return invoke(ctx, c, "DeletePolicy", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DeletePolicyResponse, error) {
			return ep.policies.DeletePolicy(ctx, req, o...)
		})
}

// ListPolicies returns every policy, by name, with its status and next run.
func (c *Client) ListPolicies(ctx context.Context, opts ...ReadOption) ([]*snapkeepv1.Policy, error) {
	var rs readSettings
	for _, o := range opts {
		o(&rs)
	}
	cons, route := consistency(rs.stale)
	req := &snapkeepv1.ListPoliciesRequest{Consistency: cons}
	resp, err := invoke(ctx, c, "ListPolicies", route,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListPoliciesResponse, error) {
			return ep.policies.ListPolicies(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetPolicies(), nil
}

// DescribePolicy returns a policy with its status and next run.
func (c *Client) DescribePolicy(ctx context.Context, name string, opts ...ReadOption) (*snapkeepv1.Policy, error) {
	var rs readSettings
	for _, o := range opts {
		o(&rs)
	}
	cons, route := consistency(rs.stale)
	req := &snapkeepv1.DescribePolicyRequest{Name: name, Consistency: cons}
	resp, err := invoke(ctx, c, "DescribePolicy", route,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DescribePolicyResponse, error) {
			return ep.policies.DescribePolicy(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetPolicy(), nil
}

// ExecutePolicy runs a policy now, outside its schedule, and returns what it took:
// one result per collection (a PENDING snapshot the cluster finishes, or the error).
func (c *Client) ExecutePolicy(ctx context.Context, name string) (*snapkeepv1.ExecutePolicyResponse, error) {
	req := &snapkeepv1.ExecutePolicyRequest{RequestId: requestID(ctx), Name: name}
	return invoke(ctx, c, "ExecutePolicy", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ExecutePolicyResponse, error) {
			return ep.policies.ExecutePolicy(ctx, req, o...)
		})
}

// PreviewPolicyRetention says what the policy's retention would expire now, and why
// it keeps the rest.
func (c *Client) PreviewPolicyRetention(ctx context.Context, name string) (*snapkeepv1.PreviewPolicyRetentionResponse, error) {
	req := &snapkeepv1.PreviewPolicyRetentionRequest{Name: name}
	return invoke(ctx, c, "PreviewPolicyRetention", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.PreviewPolicyRetentionResponse, error) {
			return ep.policies.PreviewPolicyRetention(ctx, req, o...)
		})
}

// SnapshotHoldOption builds an AddSnapshotHold call.
type SnapshotHoldOption struct {
	req *snapkeepv1.AddSnapshotHoldRequest
}

// NewSnapshotHoldOption holds snapshot name of collection (of the "default" database)
// for reason, until removed.
func NewSnapshotHoldOption(collection, name, reason string) *SnapshotHoldOption {
	return &SnapshotHoldOption{req: &snapkeepv1.AddSnapshotHoldRequest{Collection: collection, Name: name, Reason: reason}}
}

// WithDatabase names the collection's database (default "default").
func (o *SnapshotHoldOption) WithDatabase(db string) *SnapshotHoldOption {
	o.req.Database = db
	return o
}

// WithUntil retains the snapshot until t: before then nobody, admins included, can
// drop it or remove the hold (compliance, like S3 Object Lock's retain-until).
func (o *SnapshotHoldOption) WithUntil(t time.Time) *SnapshotHoldOption {
	o.req.UntilUnixMs = t.UnixMilli()
	return o
}

// AddSnapshotHold holds a committed snapshot and returns the hold (with its id, for
// RemoveSnapshotHold).
func (c *Client) AddSnapshotHold(ctx context.Context, opt *SnapshotHoldOption) (*snapkeepv1.AddSnapshotHoldResponse, error) {
	if opt == nil {
		return nil, nilOption("AddSnapshotHold")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	return invoke(ctx, c, "AddSnapshotHold", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.AddSnapshotHoldResponse, error) {
			return ep.snapshots.AddSnapshotHold(ctx, req, o...)
		})
}

// RemoveSnapshotHold removes hold holdID from snapshot name of collection in
// database ("" is "default"). A hold retained until a time still to come cannot be
// removed (ErrFailedPrecondition).
func (c *Client) RemoveSnapshotHold(ctx context.Context, database, collection, name string, holdID uint64) (*snapkeepv1.Snapshot, error) {
	req := &snapkeepv1.RemoveSnapshotHoldRequest{RequestId: requestID(ctx), Database: database, Collection: collection, Name: name, HoldId: holdID}
	resp, err := invoke(ctx, c, "RemoveSnapshotHold", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.RemoveSnapshotHoldResponse, error) {
			return ep.snapshots.RemoveSnapshotHold(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSnapshot(), nil
}
