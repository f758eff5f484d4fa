//go:build jepsenbug

package scrub

import "os"

// bugScrubFalseLoss makes a verification take a read that failed for damage, as the
// scrubber did before 2026-12-05: a data file it could not read is recorded as
// DATA_LOSS, a manifest it could not read as damaged (and rewritten). Built only with
// -tags jepsenbug and switched on with SNAPKEEP_BUG=scrub-false-loss, so the harness
// can prove its scrub checker catches a verdict of loss that no loss backs.
var bugScrubFalseLoss = os.Getenv("SNAPKEEP_BUG") == "scrub-false-loss"
