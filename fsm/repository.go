package fsm

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Repositories: ClusterIdentify gives the cluster its id (once); RepositoryRegister
// records a repository the proposing node checked from every node;
// RepositoryUnregister forgets one no job uses; RepositoryGCBegin and RepositoryGCEnd
// hold a repository while its garbage is collected, so no export's pre-check listing
// taken before the run can skip a file the run deletes (see RestoreStart).

// Repository limits.
const (
	MaxRepositories        = 64
	maxClusterIDBytes      = 128
	maxEndpointBytes       = 1024
	maxRegionBytes         = 64
	maxBucketBytes         = 255
	maxRepoPrefixBytes     = 512
	maxRepositorySnapshotB = 64
	// MaxRepositoryGCLease bounds how long a repository GC run holds its repository.
	MaxRepositoryGCLease = int64(24 * 3600 * 1e9)
)

// ValidateClusterID checks a cluster id: 1–128 of [A-Za-z0-9_-].
func ValidateClusterID(id string) error {
	if id == "" || len(id) > maxClusterIDBytes || !isIDChars(id) {
		return invalidf("a cluster id is 1–%d of [A-Za-z0-9_-], not %q", maxClusterIDBytes, id)
	}
	return nil
}

// ValidateRepositorySnapshotID checks the id of a snapshot in a repository: 1–64 of
// [A-Za-z0-9_-].
func ValidateRepositorySnapshotID(id string) error {
	if id == "" || len(id) > maxRepositorySnapshotB || !isIDChars(id) {
		return invalidf("a repository snapshot id is 1–%d of [A-Za-z0-9_-], not %q", maxRepositorySnapshotB, id)
	}
	return nil
}

func isIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidateRepository checks a repository's settings (not its state).
func ValidateRepository(r *fsmpb.Repository) error {
	if r == nil {
		return invalidf("a repository is required")
	}
	if err := ValidateName("repository", r.Name); err != nil {
		return err
	}
	if r.Endpoint != "" {
		if len(r.Endpoint) > maxEndpointBytes || strings.ContainsAny(r.Endpoint, " \t\r\n") ||
			!(strings.HasPrefix(r.Endpoint, "http://") || strings.HasPrefix(r.Endpoint, "https://")) {
			return invalidf("repository %q: the endpoint %q is not an http:// or https:// URL (at most %d bytes)", r.Name, r.Endpoint, maxEndpointBytes)
		}
	}
	if len(r.Region) > maxRegionBytes || !isPrintable(r.Region) {
		return invalidf("repository %q: the region is at most %d printable bytes", r.Name, maxRegionBytes)
	}
	if r.Bucket == "" || len(r.Bucket) > maxBucketBytes || strings.ContainsAny(r.Bucket, "/ \t\r\n") || !isPrintable(r.Bucket) {
		return invalidf("repository %q: a bucket name (1–%d bytes, no slash or space) is required", r.Name, maxBucketBytes)
	}
	if err := validateRepoPrefix(r.Name, r.Prefix); err != nil {
		return err
	}
	if r.Credentials != "" {
		if err := ValidateName("credentials", r.Credentials); err != nil {
			return invalidf("repository %q: credentials name a configured set of keys, never a secret: %v", r.Name, err)
		}
	}
	if len(r.Description) > MaxDescriptionBytes {
		return invalidf("repository %q: the description is %d bytes; the limit is %d", r.Name, len(r.Description), MaxDescriptionBytes)
	}
	if r.RepositoryId == "" || len(r.RepositoryId) > maxClusterIDBytes || !isIDChars(r.RepositoryId) {
		return invalidf("repository %q: its id (from the format marker) is 1–%d of [A-Za-z0-9_-]", r.Name, maxClusterIDBytes)
	}
	if r.WriterClusterId != "" {
		if err := ValidateClusterID(r.WriterClusterId); err != nil {
			return err
		}
	}
	return nil
}

// validateRepoPrefix: a key prefix with no empty, "." or ".." component, no control
// characters or backslashes, valid UTF-8.
func validateRepoPrefix(name, prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > maxRepoPrefixBytes || !utf8.ValidString(prefix) || strings.ContainsAny(prefix, "\\") || !isPrintable(prefix) {
		return invalidf("repository %q: the prefix %q is not a valid key prefix (at most %d bytes of printable UTF-8, no backslash)", name, prefix, maxRepoPrefixBytes)
	}
	for _, part := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if part == "" || part == "." || part == ".." {
			return invalidf("repository %q: the prefix %q has an empty, \".\" or \"..\" component", name, prefix)
		}
	}
	return nil
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func applyClusterIdentify(c *applyCtx, cmd *fsmpb.ClusterIdentify) (proto.Message, error) {
	if err := ValidateClusterID(cmd.ClusterId); err != nil {
		return nil, err
	}
	if c.t.meta.ClusterId == "" {
		meta := proto.CloneOf(c.t.meta)
		meta.ClusterId = cmd.ClusterId
		c.t.meta = meta
	}
	return &fsmpb.ClusterIdentifyResponse{ClusterId: c.t.meta.ClusterId}, nil
}

// sameRepositorySettings compares what a registration sets.
func sameRepositorySettings(a, b *fsmpb.Repository) bool {
	x, y := proto.CloneOf(a), proto.CloneOf(b)
	for _, r := range []*fsmpb.Repository{x, y} {
		r.RegisteredAt, r.GcRun, r.GcDeadline, r.GcEpoch = 0, 0, 0, 0
	}
	return proto.Equal(x, y)
}

func sameLocation(a, b *fsmpb.Repository) bool {
	return a.Endpoint == b.Endpoint && a.Bucket == b.Bucket &&
		strings.TrimSuffix(a.Prefix, "/") == strings.TrimSuffix(b.Prefix, "/")
}

func applyRepositoryRegister(c *applyCtx, cmd *fsmpb.RepositoryRegister) (proto.Message, error) {
	r := cmd.Repository
	if err := ValidateRepository(r); err != nil {
		return nil, err
	}
	cluster := c.t.meta.ClusterId
	if cluster == "" {
		return nil, preconditionf("the cluster has no id yet; it is given one before a repository is registered")
	}
	if !r.ReadOnly && r.WriterClusterId != cluster {
		writer := r.WriterClusterId
		if writer == "" {
			writer = "nobody (it was created read-only)"
		}
		return nil, preconditionf("repository %q is written by cluster %s, not this one (%s): register it read-only to restore from it", r.Name, writer, cluster)
	}
	if old, ok := c.t.repositories.get(&fsmpb.Repository{Name: r.Name}); ok {
		if sameRepositorySettings(old, r) {
			return &fsmpb.RepositoryResponse{Repository: old, Existed: true}, nil
		}
		return nil, existsf("repository %q is already registered with other settings; unregister it first", r.Name)
	}
	var clash *fsmpb.Repository
	c.t.repositories.each(func(o *fsmpb.Repository) bool {
		if sameLocation(o, r) {
			clash = o
		}
		return clash == nil
	})
	if clash != nil {
		return nil, existsf("bucket %q (prefix %q) is already registered as repository %q", r.Bucket, r.Prefix, clash.Name)
	}
	if c.t.repositories.len() >= MaxRepositories {
		return nil, exhaustedf("%d repositories are registered; the limit is %d", c.t.repositories.len(), MaxRepositories)
	}
	n := proto.CloneOf(r)
	n.RegisteredAt = c.now
	n.GcRun, n.GcDeadline, n.GcEpoch = 0, 0, 0
	c.t.repositories.put(n)
	return &fsmpb.RepositoryResponse{Repository: n}, nil
}

// jobUsing is a running job that reads or writes a repository, if any.
func (r reader) jobUsing(repository string) *fsmpb.RestoreJob {
	var found *fsmpb.RestoreJob
	r.t.restoreJobs.secondary[restoreJobsRunning].tree.Ascend(func(j *fsmpb.RestoreJob) bool {
		if j.Repository == repository {
			found = j
		}
		return found == nil
	})
	return found
}

func applyRepositoryUnregister(c *applyCtx, cmd *fsmpb.RepositoryUnregister) (proto.Message, error) {
	if err := ValidateName("repository", cmd.Name); err != nil {
		return nil, err
	}
	r, ok := c.t.repositories.get(&fsmpb.Repository{Name: cmd.Name})
	if !ok {
		return &fsmpb.RepositoryResponse{}, nil
	}
	if j := c.jobUsing(cmd.Name); j != nil {
		return nil, preconditionf("repository %q is used by %s job %d (%s); cancel it or wait for it to end", cmd.Name, jobKindName(j.Kind), j.Id, restoreStateName(j.State))
	}
	if r.GcDeadline > c.now {
		return nil, preconditionf("a garbage collection of repository %q is running", cmd.Name)
	}
	c.t.repositories.remove(r)
	return &fsmpb.RepositoryResponse{Repository: r, Existed: true}, nil
}

// writableRepository finds a repository this cluster may write to.
func (r reader) writableRepository(name string) (*fsmpb.Repository, error) {
	if err := ValidateName("repository", name); err != nil {
		return nil, err
	}
	repo, ok := r.t.repositories.get(&fsmpb.Repository{Name: name})
	if !ok {
		return nil, notFoundf("repository %q is not registered", name)
	}
	if repo.ReadOnly {
		return nil, preconditionf("repository %q is registered read-only", name)
	}
	if repo.WriterClusterId == "" || repo.WriterClusterId != r.t.meta.ClusterId {
		return nil, preconditionf("repository %q is written by cluster %s, not this one (%s)", name, repo.WriterClusterId, r.t.meta.ClusterId)
	}
	return repo, nil
}

func applyRepositoryGCBegin(c *applyCtx, cmd *fsmpb.RepositoryGCBegin) (proto.Message, error) {
	repo, err := c.writableRepository(cmd.Name)
	if err != nil {
		return nil, err
	}
	if cmd.Run == 0 {
		return nil, invalidf("a repository GC run needs an id above 0")
	}
	if cmd.Lease < int64(1e9) || cmd.Lease > MaxRepositoryGCLease {
		return nil, invalidf("a repository GC lease is 1 s to 24 h, not %d ns", cmd.Lease)
	}
	if repo.GcDeadline > c.now && repo.GcRun != cmd.Run {
		return nil, preconditionf("garbage collection run %d of repository %q is in progress; try again when it ends", repo.GcRun, cmd.Name)
	}
	n := proto.CloneOf(repo)
	if n.GcRun != cmd.Run || n.GcDeadline <= c.now {
		n.GcEpoch++ // a new run (a renewal keeps its epoch)
	}
	n.GcRun, n.GcDeadline = cmd.Run, c.now+cmd.Lease
	c.t.repositories.put(n)
	return &fsmpb.RepositoryResponse{Repository: n}, nil
}

func applyRepositoryGCEnd(c *applyCtx, cmd *fsmpb.RepositoryGCEnd) (proto.Message, error) {
	if err := ValidateName("repository", cmd.Name); err != nil {
		return nil, err
	}
	repo, ok := c.t.repositories.get(&fsmpb.Repository{Name: cmd.Name})
	if !ok {
		return nil, notFoundf("repository %q is not registered", cmd.Name)
	}
	if repo.GcRun != cmd.Run || repo.GcDeadline == 0 {
		return &fsmpb.RepositoryResponse{Repository: repo}, nil
	}
	n := proto.CloneOf(repo)
	n.GcDeadline = 0
	c.t.repositories.put(n)
	return &fsmpb.RepositoryResponse{Repository: n}, nil
}

func jobKindName(k fsmpb.JobKind) string {
	switch k {
	case fsmpb.JobKind_JOB_KIND_EXPORT:
		return "export"
	case fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE:
		return "repository restore"
	}
	return "restore"
}

// Repository finds a registered repository.
func (v *View) Repository(name string) (*fsmpb.Repository, error) {
	r, ok := v.r.t.repositories.get(&fsmpb.Repository{Name: name})
	if !ok {
		return nil, notFoundf("repository %q is not registered", name)
	}
	return r, nil
}

// Repositories lists the registered repositories by name.
func (v *View) Repositories() []*fsmpb.Repository {
	var out []*fsmpb.Repository
	v.r.t.repositories.each(func(r *fsmpb.Repository) bool {
		out = append(out, r)
		return true
	})
	return out
}

// ClusterID is the cluster's id ("" until the first ClusterIdentify).
func (v *View) ClusterID() string { return v.r.t.meta.ClusterId }
