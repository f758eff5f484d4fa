//go:build jepsenbug

package policy

import "os"

// bugDoubleRun makes the scheduler run every due time a second time right after the
// first, under a new request id and with the snapshot name rendered a second after
// the due time (so the names differ): with the FSM's half (fsm/bug_jepsenbug.go),
// which accepts a due time equal to the last, each due time gets two runs. Built only
// with -tags jepsenbug and switched on with SNAPKEEP_BUG=policy-double-run. Never in
// a normal build.
var bugDoubleRun = os.Getenv("SNAPKEEP_BUG") == "policy-double-run"
