package fsm

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Snapshot policies: PolicyPut and PolicyDelete manage them; PolicyRun takes one
// run's snapshots (the leader computes due times, the FSM keeps each due time to one
// run); PolicyRetain expires what the retention selects at the entry's time. Holds
// (SnapshotHoldAdd, SnapshotHoldRemove) keep a snapshot from every drop.

// Policy limits.
const (
	MaxPolicies            = 256
	MaxPolicyCollections   = 1024
	MaxHoldsPerSnapshot    = 16
	maxCronBytes           = 255
	maxTimeZoneBytes       = 64
	MinPolicyInterval      = int64(time.Second)
	MaxPolicyInterval      = int64(366 * 24 * time.Hour)
	MinRetentionInterval   = int64(time.Second)
	DefaultRetentionEvery  = int64(time.Minute)
	maxRetentionAge        = int64(100 * 365 * 24 * time.Hour)
	maxHoldDuration        = int64(100 * 365 * 24 * time.Hour)
	maxPolicyRetentionKeep = MaxSnapshotsPerCollection
	// PolicyLabel marks a snapshot a policy took, with the policy's name as value.
	PolicyLabel = "snapkeep.policy"
)

// cronParser reads the 5-field cron of a policy and the @yearly… shorthands. It does
// no I/O: the time zone is the policy's own field, never a TZ= prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a policy's cron expression: five fields, or @yearly, @monthly,
// @weekly, @daily, @hourly. A zone prefix and @every are refused with the field that
// replaces them.
func ParseCron(expr string) (*cron.SpecSchedule, error) {
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return nil, invalidf("the cron expression is empty")
	case len(e) > maxCronBytes:
		return nil, invalidf("the cron expression is %d bytes; the limit is %d", len(e), maxCronBytes)
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return nil, invalidf("cron %q: give the time zone as the schedule's time zone, not in the expression", expr)
	case strings.HasPrefix(e, "@every"):
		return nil, invalidf("cron %q: use an interval schedule for a fixed period", expr)
	}
	s, err := cronParser.Parse(e)
	if err != nil {
		return nil, invalidf("cron %q: %v (five fields: minute hour day-of-month month day-of-week)", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, invalidf("cron %q is not a calendar schedule", expr)
	}
	return spec, nil
}

// RenderSnapshotName renders a name template at t (in t's location): each {LAYOUT}
// is t formatted with the Go time layout LAYOUT ("{2006.01.02-15.04}"); the rest is
// kept. At least one {…} is required, and the result must be a valid snapshot name.
func RenderSnapshotName(template string, t time.Time) (string, error) {
	var b strings.Builder
	rest, fields := template, 0
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			b.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			return "", invalidf("name template %q has a '}' without its '{'", template)
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return "", invalidf("name template %q has a '{' without its '}'", template)
		}
		layout := rest[open+1 : open+1+end]
		if layout == "" {
			return "", invalidf("name template %q has an empty {}", template)
		}
		b.WriteString(rest[:open])
		b.WriteString(t.Format(layout))
		rest = rest[open+1+end+1:]
		fields++
	}
	if fields == 0 {
		return "", invalidf("name template %q has no time in braces, so every run would take the same name: add one, e.g. %q", template, template+"-{2006.01.02-15.04}")
	}
	name := b.String()
	if err := ValidateSnapshotName(name); err != nil {
		return "", invalidf("name template %q renders as %q, which is not a valid snapshot name: %v", template, name, err)
	}
	return name, nil
}

// templateProbes are the times a template is validated at: one where every field has
// two digits where it could have one, and one where each has a single digit (a
// padding layout such as "_2" renders a space then), so both renderings are checked.
var templateProbes = []time.Time{
	time.Date(2026, time.December, 24, 23, 59, 58, 999999999, time.UTC),
	time.Date(2027, time.January, 2, 3, 4, 5, 1, time.UTC),
}

// ValidatePolicy checks a policy's settings (not its state). The time zone's name is
// checked for shape only: loading it is the server's part, before it proposes.
func ValidatePolicy(p *fsmpb.Policy) error {
	if p == nil {
		return invalidf("a policy is required")
	}
	if err := ValidateName("policy", p.Name); err != nil {
		return err
	}
	if len(p.Description) > MaxDescriptionBytes {
		return invalidf("policy %q: the description is %d bytes; the limit is %d", p.Name, len(p.Description), MaxDescriptionBytes)
	}
	if p.Database != "" {
		if err := ValidateName("database", p.Database); err != nil {
			return err
		}
	}
	switch {
	case len(p.Collections) > 0 && p.CollectionGlob != "":
		return invalidf("policy %q: give collection names or a glob, not both", p.Name)
	case len(p.Collections) == 0 && p.CollectionGlob == "":
		return invalidf("policy %q: say which collections: names or a glob (\"*\" for all)", p.Name)
	case len(p.Collections) > MaxPolicyCollections:
		return invalidf("policy %q names %d collections; the limit is %d (use a glob)", p.Name, len(p.Collections), MaxPolicyCollections)
	}
	seen := map[string]bool{}
	for _, c := range p.Collections {
		if err := ValidateName("collection", c); err != nil {
			return err
		}
		if seen[c] {
			return invalidf("policy %q names collection %q twice", p.Name, c)
		}
		seen[c] = true
	}
	if p.CollectionGlob != "" {
		if len(p.CollectionGlob) > MaxNameLength {
			return invalidf("policy %q: the glob is %d bytes; the limit is %d", p.Name, len(p.CollectionGlob), MaxNameLength)
		}
		if _, err := path.Match(p.CollectionGlob, ""); err != nil {
			return invalidf("policy %q: the glob %q is malformed: %v", p.Name, p.CollectionGlob, err)
		}
	}
	if err := validatePolicySchedule(p.Name, p.Schedule); err != nil {
		return err
	}
	for _, at := range templateProbes {
		if _, err := RenderSnapshotName(p.NameTemplate, at); err != nil {
			return invalidf("policy %q: %v", p.Name, err)
		}
	}
	if err := ValidateProperties("snapshot label", p.Labels); err != nil {
		return err
	}
	if _, ok := p.Labels[PolicyLabel]; ok {
		return invalidf("policy %q: the label %q is set by snapkeep to the policy's name", p.Name, PolicyLabel)
	}
	if len(p.Labels) >= MaxProperties {
		return invalidf("policy %q has %d labels; the limit is %d (one more is the policy's own)", p.Name, len(p.Labels), MaxProperties-1)
	}
	if err := validateRetention(p.Name, p.Retention); err != nil {
		return err
	}
	if p.ExportRepository != "" {
		if err := ValidateName("repository", p.ExportRepository); err != nil {
			return err
		}
	} else if p.ExportRetention != nil {
		return invalidf("policy %q: an export retention needs an export repository", p.Name)
	}
	return validateRetention(p.Name, p.ExportRetention)
}

func validatePolicySchedule(name string, s *fsmpb.PolicySchedule) error {
	if s == nil || (s.Cron == "" && s.Interval == 0) {
		return invalidf("policy %q: a schedule is required: a cron expression or an interval", name)
	}
	if s.Cron != "" && s.Interval != 0 {
		return invalidf("policy %q: give a cron expression or an interval, not both", name)
	}
	if s.Interval != 0 {
		if s.Interval < MinPolicyInterval || s.Interval > MaxPolicyInterval {
			return invalidf("policy %q: the interval must be 1s–366 days, not %v", name, time.Duration(s.Interval))
		}
		if s.TimeZone != "" {
			return invalidf("policy %q: an interval schedule has no time zone (its names are rendered in UTC)", name)
		}
		return nil
	}
	if _, err := ParseCron(s.Cron); err != nil {
		return invalidf("policy %q: %v", name, err)
	}
	if len(s.TimeZone) > maxTimeZoneBytes || !isPrintable(s.TimeZone) || strings.ContainsAny(s.TimeZone, " \\") {
		return invalidf("policy %q: %q is not a time zone name (IANA, e.g. Europe/Berlin)", name, s.TimeZone)
	}
	return nil
}

func validateRetention(name string, r *fsmpb.PolicyRetention) error {
	if r == nil {
		return nil
	}
	switch {
	case r.ExpireAfter < 0 || r.ExpireAfter > maxRetentionAge:
		return invalidf("policy %q: expire-after must be 0 (never) to 100 years", name)
	case r.MaxCount > maxPolicyRetentionKeep || r.MinCount > maxPolicyRetentionKeep:
		return invalidf("policy %q: retention counts are at most %d", name, maxPolicyRetentionKeep)
	case r.MaxCount != 0 && r.MinCount > r.MaxCount:
		return invalidf("policy %q: keep at least %d but at most %d? the minimum must not exceed the maximum", name, r.MinCount, r.MaxCount)
	case r.Interval != 0 && (r.Interval < MinRetentionInterval || r.Interval > MaxPolicyInterval):
		return invalidf("policy %q: the retention interval must be 1s–366 days, not %v", name, time.Duration(r.Interval))
	}
	return nil
}

// HasRetention reports whether a retention could ever expire anything.
func HasRetention(r *fsmpb.PolicyRetention) bool {
	return r != nil && (r.ExpireAfter > 0 || r.MaxCount > 0)
}

// RetentionEvery is how often the leader checks a policy's retention.
func RetentionEvery(r *fsmpb.PolicyRetention) time.Duration {
	if r == nil || r.Interval == 0 {
		return time.Duration(DefaultRetentionEvery)
	}
	return time.Duration(r.Interval)
}

// samePolicySettings compares what PolicyPut sets.
func samePolicySettings(a, b *fsmpb.Policy) bool {
	x, y := settingsOf(a), settingsOf(b)
	return proto.Equal(x, y)
}

func settingsOf(p *fsmpb.Policy) *fsmpb.Policy {
	return &fsmpb.Policy{
		Name: p.Name, Description: p.Description, Database: p.Database, Collections: p.Collections,
		CollectionGlob: p.CollectionGlob, Schedule: p.Schedule, NameTemplate: p.NameTemplate,
		Labels: p.Labels, Retention: p.Retention, Enabled: p.Enabled,
		ExportRepository: p.ExportRepository, ExportRetention: p.ExportRetention,
	}
}

func (r reader) policy(name string) (*fsmpb.Policy, error) {
	p, ok := r.t.policies.get(&fsmpb.Policy{Name: name})
	if !ok {
		return nil, notFoundf("policy %q not found", name)
	}
	return p, nil
}

// policyByID finds a policy by id (a scan: there are at most MaxPolicies).
func (r reader) policyByID(id uint64) *fsmpb.Policy {
	var found *fsmpb.Policy
	r.t.policies.each(func(p *fsmpb.Policy) bool {
		if p.Id == id {
			found = p
		}
		return found == nil
	})
	return found
}

func applyPolicyPut(c *applyCtx, cmd *fsmpb.PolicyPut) (proto.Message, error) {
	p := cmd.Policy
	if err := ValidatePolicy(p); err != nil {
		return nil, err
	}
	if _, err := c.database(p.Database); err != nil {
		return nil, err
	}
	if p.ExportRepository != "" {
		if _, err := c.writableRepository(p.ExportRepository); err != nil {
			return nil, err
		}
	}
	old, exists := c.t.policies.get(&fsmpb.Policy{Name: p.Name})
	if cmd.Create {
		if exists {
			if samePolicySettings(old, p) {
				return &fsmpb.PolicyResponse{Policy: old, Existed: true}, nil
			}
			return nil, existsf("policy %q already exists with other settings; update it instead", p.Name)
		}
		if c.t.policies.len() >= MaxPolicies {
			return nil, exhaustedf("%d policies exist; the limit is %d", c.t.policies.len(), MaxPolicies)
		}
		n := settingsOf(p)
		n.Id = c.nextID()
		n.Revision = 1
		n.CreatedAt, n.UpdatedAt, n.ScheduleFrom = c.now, c.now, c.now
		n.Status = &fsmpb.PolicyStatus{}
		c.t.policies.put(n)
		return &fsmpb.PolicyResponse{Policy: n}, nil
	}
	if !exists {
		return nil, notFoundf("policy %q not found", p.Name)
	}
	if cmd.Revision != old.Revision {
		return nil, preconditionf("policy %q changed meanwhile (revision %d, not %d): read it again and retry", p.Name, old.Revision, cmd.Revision)
	}
	n := settingsOf(p)
	n.Id, n.Revision = old.Id, old.Revision+1
	n.CreatedAt, n.UpdatedAt = old.CreatedAt, c.now
	n.ScheduleFrom, n.LastDue, n.Status = old.ScheduleFrom, old.LastDue, old.Status
	if !proto.Equal(old.Schedule, p.Schedule) || (p.Enabled && !old.Enabled) {
		// Due times count from now: a new schedule does not run for times before it,
		// nor does a policy enabled again catch up on the times it was off.
		n.ScheduleFrom = c.now
	}
	c.t.policies.put(n)
	return &fsmpb.PolicyResponse{Policy: n}, nil
}

func applyPolicyDelete(c *applyCtx, cmd *fsmpb.PolicyDelete) (proto.Message, error) {
	if err := ValidateName("policy", cmd.Name); err != nil {
		return nil, err
	}
	p, ok := c.t.policies.get(&fsmpb.Policy{Name: cmd.Name})
	if !ok {
		return &fsmpb.PolicyResponse{}, nil
	}
	c.t.policies.remove(p)
	return &fsmpb.PolicyResponse{Policy: p, Existed: true}, nil
}

// policyCollections are the collections a run of p snapshots, in name order: every
// named one (an error for one that is missing or not active) or every active one the
// glob matches.
func (r reader) policyCollections(p *fsmpb.Policy, db *fsmpb.Database) (colls []*fsmpb.Collection, missing []*fsmpb.PolicyRunResult) {
	if p.CollectionGlob != "" {
		beyond := 0
		for _, coll := range r.liveCollections(db.Id) {
			if ok, _ := path.Match(p.CollectionGlob, coll.Name); ok && coll.State == fsmpb.CollectionState_COLLECTION_STATE_ACTIVE {
				if len(colls) == MaxPolicyCollections {
					beyond++
					continue
				}
				colls = append(colls, coll)
			}
		}
		if beyond > 0 {
			missing = append(missing, &fsmpb.PolicyRunResult{Collection: p.CollectionGlob,
				Error: fmt.Sprintf("%d more collections match %q beyond the %d a run takes; they were not snapshotted: narrow the glob or split the policy", beyond, p.CollectionGlob, MaxPolicyCollections)})
		}
		return colls, missing
	}
	names := slices.Clone(p.Collections)
	slices.Sort(names)
	for _, name := range names {
		coll, _, err := r.collection(db.Name, name)
		if err != nil {
			missing = append(missing, &fsmpb.PolicyRunResult{Collection: name, Error: err.Error()})
			continue
		}
		colls = append(colls, coll)
	}
	return colls, missing
}

func applyPolicyRun(c *applyCtx, cmd *fsmpb.PolicyRun) (proto.Message, error) {
	p, err := c.policy(cmd.Policy)
	if err != nil {
		return nil, err
	}
	if cmd.Revision != p.Revision {
		return nil, preconditionf("policy %q is at revision %d, not %d: the run was computed from an old schedule", p.Name, p.Revision, cmd.Revision)
	}
	if cmd.Due != 0 {
		switch {
		case !p.Enabled:
			return nil, preconditionf("policy %q is disabled", p.Name)
		case cmd.Due <= p.LastDue && !(bugPolicyDoubleRun && cmd.Due == p.LastDue):
			return nil, preconditionf("policy %q already ran for due time %s (its last is %s)", p.Name, fmtTime(cmd.Due), fmtTime(p.LastDue))
		case cmd.Due <= p.ScheduleFrom:
			return nil, preconditionf("due time %s is not after policy %q's schedule began (%s)", fmtTime(cmd.Due), p.Name, fmtTime(p.ScheduleFrom))
		case cmd.Due > c.now:
			return nil, preconditionf("due time %s of policy %q is in the future", fmtTime(cmd.Due), p.Name)
		}
	}
	if cmd.LeaderError != "" {
		return c.failPolicyRun(p, cmd)
	}
	if err := ValidateSnapshotName(cmd.SnapshotName); err != nil {
		return nil, err
	}
	if cmd.MaxPerCollection == 0 || cmd.MaxPerCollection > MaxSnapshotsPerCollection {
		return nil, invalidf("the per-collection snapshot limit must be 1–%d, not %d", MaxSnapshotsPerCollection, cmd.MaxPerCollection)
	}
	if cmd.PendingTimeout < minLease || cmd.PendingTimeout > MaxLease {
		return nil, invalidf("the snapshot pending timeout must be between 1s and 168h")
	}
	n := proto.CloneOf(p)
	if n.Status == nil {
		n.Status = &fsmpb.PolicyStatus{}
	}
	if cmd.Due != 0 {
		n.LastDue = cmd.Due
	}
	n.Status.Runs++
	n.Status.LastRunAt, n.Status.LastRunDue = c.now, cmd.Due
	resp := &fsmpb.PolicyRunResponse{}
	db, dbErr := c.database(p.Database)
	if dbErr != nil {
		resp.Results = append(resp.Results, &fsmpb.PolicyRunResult{Error: dbErr.Error()})
	} else {
		colls, missing := c.policyCollections(p, db)
		resp.Results = append(resp.Results, missing...)
		labels := make(map[string]string, len(p.Labels)+1)
		for k, v := range p.Labels {
			labels[k] = v
		}
		labels[PolicyLabel] = p.Name
		for _, coll := range colls {
			res := &fsmpb.PolicyRunResult{Collection: coll.Name, SnapshotName: cmd.SnapshotName}
			snap, err := c.beginSnapshot(db, coll, snapshotBeginArgs{
				name: cmd.SnapshotName, description: p.Description, labels: labels,
				maxPerCollection: cmd.MaxPerCollection, pendingTimeout: cmd.PendingTimeout,
				policyID: p.Id, due: cmd.Due,
			})
			if err != nil {
				res.Error = err.Error()
			} else {
				res.SnapshotId = snap.Id
			}
			resp.Results = append(resp.Results, res)
		}
		slices.SortFunc(resp.Results, func(a, b *fsmpb.PolicyRunResult) int { return strings.Compare(a.Collection, b.Collection) })
	}
	var failed []string
	for _, r := range resp.Results {
		if r.Error != "" {
			failed = append(failed, r.Error)
		}
	}
	switch {
	case len(resp.Results) == 0:
		failed = append(failed, "no active collection matched "+policyTarget(p))
		resp.Results = nil
	}
	if len(failed) > 0 {
		n.Status.SnapshotsFailed += uint64(len(failed))
		n.Status.LastFailureAt = c.now
		n.Status.LastFailure = truncate(fmt.Sprintf("the %s: %d failed: %s", runName(cmd.Due, c.now), len(failed), strings.Join(failed, "; ")), MaxDescriptionBytes)
	}
	c.t.policies.put(n)
	resp.Policy = n
	return resp, nil
}

// failPolicyRun records a run the leader could not take: the due time is used up and
// the reason is the policy's last failure.
func (c *applyCtx) failPolicyRun(p *fsmpb.Policy, cmd *fsmpb.PolicyRun) (proto.Message, error) {
	if cmd.Due == 0 {
		return nil, invalidf("a run on request is not recorded as failed: answer the caller instead")
	}
	n := proto.CloneOf(p)
	if n.Status == nil {
		n.Status = &fsmpb.PolicyStatus{}
	}
	n.LastDue = cmd.Due
	n.Status.Runs++
	n.Status.LastRunAt, n.Status.LastRunDue = c.now, cmd.Due
	n.Status.SnapshotsFailed++
	n.Status.LastFailureAt = c.now
	n.Status.LastFailure = truncate(fmt.Sprintf("the %s: the leader could not take it: %s", runName(cmd.Due, c.now), cmd.LeaderError), MaxDescriptionBytes)
	c.t.policies.put(n)
	return &fsmpb.PolicyRunResponse{Policy: n}, nil
}

func policyTarget(p *fsmpb.Policy) string {
	if p.CollectionGlob != "" {
		return fmt.Sprintf("%q", p.CollectionGlob)
	}
	return strings.Join(p.Collections, ", ")
}

// runName names a run in messages: "run for due time T" or "run on request at T".
func runName(due, now int64) string {
	if due == 0 {
		return "run on request at " + fmtTime(now)
	}
	return "run for due time " + fmtTime(due)
}

func fmtTime(ns int64) string {
	if ns == 0 {
		return "never"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("…")] + "…"
}

// policySnapshotEvent records in its policy's status that a snapshot it took
// committed (ok) or was given up before it committed.
func (c *applyCtx) policySnapshotEvent(s *fsmpb.Snapshot, ok bool, reason string) {
	if s.PolicyId == 0 {
		return
	}
	p := c.policyByID(s.PolicyId)
	if p == nil {
		return
	}
	n := proto.CloneOf(p)
	if n.Status == nil {
		n.Status = &fsmpb.PolicyStatus{}
	}
	if ok {
		n.Status.SnapshotsTaken++
		n.Status.LastSuccessAt = c.now
		n.Status.LastSuccess = truncate(fmt.Sprintf("snapshot %q of collection %q committed", s.Name, s.CollectionName), MaxDescriptionBytes)
	} else {
		n.Status.SnapshotsFailed++
		n.Status.LastFailureAt = c.now
		n.Status.LastFailure = truncate(fmt.Sprintf("snapshot %q of collection %q was not committed: %s", s.Name, s.CollectionName, reason), MaxDescriptionBytes)
	}
	c.t.policies.put(n)
}

// RetentionDecision is what a policy's retention does with one of its snapshots.
type RetentionDecision struct {
	Snapshot *fsmpb.Snapshot
	Delete   bool
	Reason   string
}

// retentionPlan decides, at time now, for each committed snapshot policy p took
// (per collection, oldest first) whether its retention expires it. A snapshot is
// eligible when older than expire-after or beyond the newest max-count; eligible ones
// go oldest first while more than min-count remain. Held snapshots and snapshots a
// job reads are kept (and count as kept).
func (r reader) retentionPlan(p *fsmpb.Policy, now int64) []RetentionDecision {
	ret := p.Retention
	var out []RetentionDecision
	byCollection := map[uint64][]*fsmpb.Snapshot{}
	var order []uint64
	r.eachPolicySnapshot(p.Id, func(s *fsmpb.Snapshot) bool {
		if s.State != fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
			return true
		}
		if _, ok := byCollection[s.CollectionId]; !ok {
			order = append(order, s.CollectionId)
		}
		byCollection[s.CollectionId] = append(byCollection[s.CollectionId], s)
		return true
	})
	for _, coll := range order {
		snaps := byCollection[coll] // oldest first (ids grow with creation)
		kept := len(snaps)
		for i, s := range snaps {
			newer := len(snaps) - 1 - i // how many of the policy's snapshots are newer
			d := RetentionDecision{Snapshot: s}
			age := now - s.CreatedAt
			expired := ret != nil && ret.ExpireAfter > 0 && age >= ret.ExpireAfter
			excess := ret != nil && ret.MaxCount > 0 && newer >= int(ret.MaxCount)
			switch {
			case !expired && !excess:
				d.Reason = "kept: within the retention"
			case ret.MinCount > 0 && kept <= int(ret.MinCount):
				d.Reason = fmt.Sprintf("kept: the minimum of %d", ret.MinCount)
			case activeHold(s, now) != nil:
				h := activeHold(s, now)
				d.Reason = fmt.Sprintf("kept: held (%s)", holdText(h))
			case r.restoreReading(s.Id) != nil:
				d.Reason = fmt.Sprintf("kept: job %d reads it", r.restoreReading(s.Id).Id)
			case p.ExportRepository != "" && s.PolicyExportJob == 0:
				d.Reason = fmt.Sprintf("kept: not exported to %q yet", p.ExportRepository)
			default:
				d.Delete = true
				kept--
				if excess {
					d.Reason = fmt.Sprintf("expired: %d newer snapshots, the maximum is %d", newer, ret.MaxCount)
				} else {
					d.Reason = fmt.Sprintf("expired: %v old, expire-after is %v", time.Duration(age).Round(time.Second), time.Duration(ret.ExpireAfter))
				}
			}
			out = append(out, d)
		}
	}
	return out
}

func applyPolicyRetain(c *applyCtx, cmd *fsmpb.PolicyRetain) (proto.Message, error) {
	p, err := c.policy(cmd.Policy)
	if err != nil {
		return nil, err
	}
	resp := &fsmpb.PolicyRetainResponse{}
	for _, d := range c.retentionPlan(p, c.now) {
		if !d.Delete {
			continue
		}
		if _, err := c.markSnapshotDeleting(d.Snapshot, fmt.Sprintf("retention of policy %q: %s", p.Name, d.Reason)); err != nil {
			return nil, err // the plan excludes what the drop path refuses: a bug
		}
		resp.Deleted = append(resp.Deleted, d.Snapshot.Id)
	}
	n := proto.CloneOf(p)
	if n.Status == nil {
		n.Status = &fsmpb.PolicyStatus{}
	}
	n.Status.SnapshotsDeleted += uint64(len(resp.Deleted))
	n.Status.LastRetentionAt = c.now
	c.t.policies.put(n)
	resp.Policy = n
	return resp, nil
}

// eachPolicySnapshot visits the snapshots a policy took, by (collection id, id).
func (r reader) eachPolicySnapshot(policyID uint64, fn func(*fsmpb.Snapshot) bool) {
	r.t.snapshots.secondary[snapshotsByPolicy].tree.AscendGreaterOrEqual(&fsmpb.Snapshot{PolicyId: policyID},
		func(s *fsmpb.Snapshot) bool { return s.PolicyId == policyID && fn(s) })
}

// activeHold is a hold that holds s at now, if any: the one retained longest (it
// cannot be removed), else the first until-removed one.
func activeHold(s *fsmpb.Snapshot, now int64) *fsmpb.SnapshotHold {
	var timed, open *fsmpb.SnapshotHold
	for _, h := range s.Holds {
		switch {
		case h.Until == 0:
			if open == nil {
				open = h
			}
		case h.Until > now && (timed == nil || h.Until > timed.Until):
			timed = h
		}
	}
	if timed != nil {
		return timed
	}
	return open
}

func holdText(h *fsmpb.SnapshotHold) string {
	if h.Until != 0 {
		return fmt.Sprintf("hold %d until %s: %s", h.Id, fmtTime(h.Until), h.Reason)
	}
	return fmt.Sprintf("hold %d: %s", h.Id, h.Reason)
}

// ValidateHold checks a hold's reason and until (0, or after now).
func ValidateHold(reason string, until, now int64) error {
	if strings.TrimSpace(reason) == "" {
		return invalidf("a hold needs a reason")
	}
	if len(reason) > MaxDescriptionBytes || !isPrintable(reason) {
		return invalidf("a hold's reason is at most %d bytes of printable text", MaxDescriptionBytes)
	}
	if until != 0 && (until <= now || until-now > maxHoldDuration) {
		return invalidf("a hold's until must be in the future and within 100 years, not %s", fmtTime(until))
	}
	return nil
}

func applySnapshotHoldAdd(c *applyCtx, cmd *fsmpb.SnapshotHoldAdd) (proto.Message, error) {
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	if err := ValidateHold(cmd.Reason, cmd.Until, c.now); err != nil {
		return nil, err
	}
	if s.State != fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		return nil, preconditionf("snapshot %q is %s; only a committed snapshot can be held", s.Name, snapshotStateName(s.State))
	}
	if len(s.Holds) >= MaxHoldsPerSnapshot {
		return nil, exhaustedf("snapshot %q has %d holds; the limit is %d", s.Name, len(s.Holds), MaxHoldsPerSnapshot)
	}
	next := proto.CloneOf(s)
	next.Holds = append(next.Holds, &fsmpb.SnapshotHold{Id: c.nextID(), Reason: cmd.Reason, Until: cmd.Until, AddedAt: c.now})
	c.t.snapshots.put(next)
	return snapshotResponse(next), nil
}

func applySnapshotHoldRemove(c *applyCtx, cmd *fsmpb.SnapshotHoldRemove) (proto.Message, error) {
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(s.Holds, func(h *fsmpb.SnapshotHold) bool { return h.Id == cmd.HoldId })
	if i < 0 {
		return nil, notFoundf("snapshot %q has no hold %d", s.Name, cmd.HoldId)
	}
	if h := s.Holds[i]; h.Until > c.now {
		return nil, preconditionf("snapshot %q: hold %d is retained until %s (%s); nobody, admins included, can remove it before then",
			s.Name, h.Id, fmtTime(h.Until), h.Reason)
	}
	next := proto.CloneOf(s)
	next.Holds = slices.Delete(next.Holds, i, i+1)
	c.t.snapshots.put(next)
	return snapshotResponse(next), nil
}

// Policies lists every policy in name order.
func (v *View) Policies() []*fsmpb.Policy {
	out := make([]*fsmpb.Policy, 0, v.r.t.policies.len())
	v.r.t.policies.each(func(p *fsmpb.Policy) bool {
		out = append(out, p)
		return true
	})
	return out
}

// PolicyByID finds a policy by id (nil if none: deleted, or never).
func (v *View) PolicyByID(id uint64) *fsmpb.Policy { return v.r.policyByID(id) }

// Policy finds a policy by name.
func (v *View) Policy(name string) (*fsmpb.Policy, error) { return v.r.policy(name) }

// RetentionPlan is what policy p's retention would do at now: PolicyRetain applies
// this same function at its entry's time.
func (v *View) RetentionPlan(p *fsmpb.Policy, now int64) []RetentionDecision {
	return v.r.retentionPlan(p, now)
}

// EachPolicySnapshot visits the snapshots a policy took (any state), by (collection
// id, id).
func (v *View) EachPolicySnapshot(policyID uint64, fn func(*fsmpb.Snapshot) bool) {
	v.r.eachPolicySnapshot(policyID, fn)
}

// ActiveHold is the hold that keeps s from being dropped at now, if any.
func ActiveHold(s *fsmpb.Snapshot, now int64) *fsmpb.SnapshotHold { return activeHold(s, now) }

func applyPolicyExport(c *applyCtx, cmd *fsmpb.PolicyExport) (proto.Message, error) {
	p, err := c.policy(cmd.Policy)
	if err != nil {
		return nil, err
	}
	if p.ExportRepository == "" {
		return nil, preconditionf("policy %q exports to no repository", p.Name)
	}
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	if s.PolicyId != p.Id {
		return nil, preconditionf("snapshot %q was not taken by policy %q", s.Name, p.Name)
	}
	if s.PolicyExportJob != 0 {
		return nil, preconditionf("snapshot %q was exported by its policy already (job %d)", s.Name, s.PolicyExportJob)
	}
	begin := &fsmpb.ExportBegin{Database: s.DatabaseName, Collection: s.CollectionName, Snapshot: s.Name,
		Repository: p.ExportRepository, RepositorySnapshot: cmd.RepositorySnapshot, MaxAttempts: cmd.MaxAttempts}
	if err := ValidateRepositorySnapshotID(begin.RepositorySnapshot); err != nil {
		return nil, err
	}
	if begin.MaxAttempts > MaxRestoreAttempts {
		return nil, invalidf("max attempts %d is over the limit of %d", begin.MaxAttempts, MaxRestoreAttempts)
	}
	if _, err := c.writableRepository(p.ExportRepository); err != nil {
		return nil, err
	}
	resp, err := c.beginExport(s, begin)
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(s)
	next.PolicyExportJob = resp.Job.Id
	c.t.snapshots.put(next)
	n := proto.CloneOf(p)
	if n.Status == nil {
		n.Status = &fsmpb.PolicyStatus{}
	}
	n.Status.ExportsStarted++
	n.Status.LastExportAt = c.now
	c.t.policies.put(n)
	return resp, nil
}

func applyPolicyExportsExpired(c *applyCtx, cmd *fsmpb.PolicyExportsExpired) (proto.Message, error) {
	p, err := c.policy(cmd.Policy)
	if err != nil {
		return nil, err
	}
	n := proto.CloneOf(p)
	if n.Status == nil {
		n.Status = &fsmpb.PolicyStatus{}
	}
	n.Status.ExportsExpired += uint64(cmd.Count)
	n.Status.LastExportExpiryAt = c.now
	c.t.policies.put(n)
	return &fsmpb.PolicyResponse{Policy: n}, nil
}

// ExportRetentionPlan decides, at time now, which of a repository's index entries the
// policy's export retention expires: the entries this cluster exported for the policy
// (by its label and the source cluster), per source collection, by the same rules as
// the retention of its snapshots (oldest first by creation; never below the minimum).
// busy names entries a job reads (kept).
func ExportRetentionPlan(p *fsmpb.Policy, entries []ExportedEntry, now int64, busy func(id string) bool) []ExportDecision {
	ret := p.ExportRetention
	byCollection := map[uint64][]ExportedEntry{}
	var order []uint64
	for _, e := range entries {
		if _, ok := byCollection[e.CollectionID]; !ok {
			order = append(order, e.CollectionID)
		}
		byCollection[e.CollectionID] = append(byCollection[e.CollectionID], e)
	}
	var out []ExportDecision
	for _, coll := range order {
		list := byCollection[coll]
		slices.SortStableFunc(list, func(a, b ExportedEntry) int { return cmpInt64(a.CreatedAt, b.CreatedAt) })
		kept := len(list)
		for i, e := range list {
			newer := len(list) - 1 - i
			d := ExportDecision{Entry: e}
			age := now - e.CreatedAt
			expired := ret != nil && ret.ExpireAfter > 0 && age >= ret.ExpireAfter
			excess := ret != nil && ret.MaxCount > 0 && newer >= int(ret.MaxCount)
			switch {
			case !expired && !excess:
				d.Reason = "kept: within the export retention"
			case ret.MinCount > 0 && kept <= int(ret.MinCount):
				d.Reason = fmt.Sprintf("kept: the minimum of %d", ret.MinCount)
			case busy(e.ID):
				d.Reason = "kept: a job reads it"
			default:
				d.Delete = true
				kept--
				d.Reason = "expired"
			}
			out = append(out, d)
		}
	}
	return out
}

// ExportedEntry is what the export retention needs of a repository index entry.
type ExportedEntry struct {
	ID           string
	CollectionID uint64
	CreatedAt    int64
}

// ExportDecision is what the export retention does with one entry.
type ExportDecision struct {
	Entry  ExportedEntry
	Delete bool
	Reason string
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
