package checker

import (
	"context"
	"fmt"
	"slices"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// ExternalCollector holds an external collector's deletions to account (the milvus
// workload's, which deletes exactly what ReleaseForDeletion answered deletable): no
// object it deleted may be needed at the end — listed by a FLUSHED segment or a READY
// index build, or by a COMMITTED snapshot's manifest. The bucket audit finds such a
// file missing too; this checker names the release that let it go.
type ExternalCollector struct{}

func (ExternalCollector) Name() string { return "external-collector" }

func (c ExternalCollector) Check(ctx context.Context, in Input) ([]Violation, error) {
	deletedBy := map[string]history.Op{}
	for _, op := range in.Ops {
		if op.Kind == history.Release && op.Result == history.OK {
			for _, f := range op.Output.Files {
				if _, ok := deletedBy[f.Key]; !ok {
					deletedBy[f.Key] = op
				}
			}
		}
	}
	if len(deletedBy) == 0 {
		return nil, nil
	}
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	live, _, err := liveFiles(ctx, c.Name(), in) // unreadable manifests are the bucket audit's to report
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(deletedBy))
	for k := range deletedBy {
		if _, ok := live[k]; ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var vs []Violation
	for _, k := range keys {
		op := deletedBy[k]
		vs = append(vs, Violation{Checker: c.Name(), OpIDs: []int64{op.ID},
			Message: fmt.Sprintf("release op %d (segments %v, builds %v, keys %v) let the collector delete %s, which %s needs at the end",
				op.ID, op.Input.SegmentIDs, op.Input.Builds, op.Input.Keys, k, live[k].owner)})
	}
	return vs, nil
}
