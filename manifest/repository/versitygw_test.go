package repository

import (
	"testing"

	"github.com/snapkeep/snapkeep/objstore/versitygw"
)

// TestVersityGWConditionalCreate runs the compare-and-swap tests against a real S3
// gateway that implements If-None-Match (versitygw, installed by `make tools`):
// concurrent Inits agree on one marker, racing updaters of one cluster lose nothing,
// and another cluster is refused.
func TestVersityGWConditionalCreate(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	store := newS3(t, gw.Config())
	t.Run("init-race", func(t *testing.T) {
		t.Parallel()
		checkInitRace(t, store, "init-race")
	})
	t.Run("update-race", func(t *testing.T) {
		t.Parallel()
		checkUpdateRace(t, store, "update-race")
	})
	t.Run("other-writer", func(t *testing.T) {
		t.Parallel()
		checkOtherWriter(t, store, "other-writer")
	})
}
