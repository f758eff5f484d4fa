package restore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A retry delay the leader asked for is a floor, except that a kick (a job started, a
// report sent) ends it at once: the runner then asks again instead of idling.
func TestRunnerPauseEndsOnAKick(t *testing.T) {
	cases := []struct {
		name       string
		delay      time.Duration
		kick       bool
		cancel     bool
		wantKicked bool
	}{
		{name: "delay passes", delay: 10 * time.Millisecond},
		{name: "kick ends a long delay", delay: time.Hour, kick: true, wantKicked: true},
		{name: "context ends a long delay", delay: time.Hour, cancel: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRunner(nil, RunnerConfig{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.kick {
				r.Kick()
			}
			if tc.cancel {
				cancel()
			}
			done := make(chan bool, 1)
			go func() { done <- r.pause(ctx, tc.delay) }()
			select {
			case kicked := <-done:
				require.Equal(t, tc.wantKicked, kicked)
			case <-time.After(10 * time.Second):
				t.Fatal("pause did not end")
			}
		})
	}
}
