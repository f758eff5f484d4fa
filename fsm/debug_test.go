package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// CheckDerived must see each kind of drift it guards against.
func TestCheckDerivedSeesDrift(t *testing.T) {
	entries, _ := randomLog(t, 3, 800)
	f := New(nil)
	applyAll(f, entries, 1)
	require.NoError(t, f.View().CheckDerived())

	drifts := map[string]func(t *tables){
		"a pin lost": func(t *tables) {
			p, ok := t.segmentPins.Min()
			if ok {
				t.segmentPins.Delete(p)
			} else {
				t.segmentPins.ReplaceOrInsert(pin{id: 1, snapshot: 1})
			}
		},
		"a secondary order missing a record": func(t *tables) {
			s, _ := t.segments.secondary[segmentsByCollection].tree.Min()
			t.segments.secondary[segmentsByCollection].tree.Delete(s)
		},
		"totals off": func(t *tables) { t.segments.totals[1]++ },
		"a leased task too many": func(t *tables) {
			t.leasedTasks.ReplaceOrInsert(leasedTask{job: 1 << 60, task: 1, lease: 1})
		},
	}
	for name, drift := range drifts {
		t.Run(name, func(t *testing.T) {
			tx := f.current()
			drift(tx)
			require.Error(t, tx.checkDerived())
		})
	}
}
