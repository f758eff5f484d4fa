//go:build jepsenbug

package policy

import "os"

// bugDoubleRun makes the scheduler run every due time twice more right after the
// first, under new request ids and snapshot names with the suffixes -again1 and
// -again2 (so the names differ): with the FSM's half (fsm/bug_jepsenbug.go), which
// accepts a due time equal to the last, each due time gets two or three runs. Built only
// with -tags jepsenbug and switched on with SNAPKEEP_BUG=policy-double-run. Never in
// a normal build.
var bugDoubleRun = os.Getenv("SNAPKEEP_BUG") == "policy-double-run"
