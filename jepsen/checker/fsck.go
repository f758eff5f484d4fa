package checker

import (
	"context"
	"fmt"

	"github.com/snapkeep/snapkeep/client"
)

// Fsck runs the cluster's own integrity check, deep (every data file read back with
// its CRC-32C), against the healed cluster: every file the catalog needs is in the
// bucket with its size and checksum, every committed snapshot's manifest matches the
// catalog, and every registered repository verifies (its manifests and every object
// its snapshots reference, read back). Each problem it reports is a violation;
// orphans are not (the collector's), nor a repository's unreferenced objects.
type Fsck struct{}

func (Fsck) Name() string { return "fsck" }

func (c Fsck) Check(ctx context.Context, in Input) ([]Violation, error) {
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	resp, err := in.End.Client.Fsck(ctx, client.NewFsckOption().WithDeep(0, 0))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name(), err)
	}
	var vs []Violation
	for _, p := range resp.GetProblems() {
		vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("fsck at log index %d: %s %s (size %d, want %d; segments %v, snapshots %v): %s",
			resp.GetAppliedIndex(), p.GetKind(), p.GetKey(), p.GetSize(), p.GetWant(), p.GetSegmentIds(), p.GetSnapshotIds(), p.GetDetail())})
	}
	return vs, nil
}
