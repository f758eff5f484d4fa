package restore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPartSize(t *testing.T) {
	c := (&Executor{}).config()
	require.Equal(t, DefaultPartSize, c.partSize(6<<30))
	// 5 TiB in at most 10,000 parts: parts of at least 525 MiB (whole MiB).
	ps := c.partSize(5 << 40)
	require.Equal(t, int64(525<<20), ps)
	require.LessOrEqual(t, (int64(5<<40)+ps-1)/ps, int64(maxParts))

	c = (&Executor{PartSize: 1}).config()
	require.Equal(t, MinPartSize, c.partSize(100<<20), "at least 5 MiB")
	c = (&Executor{PartSize: 10 << 30}).config()
	require.Equal(t, MaxPartSize, c.partSize(100<<30), "at most 5 GiB")

	c = (&Executor{MultipartThreshold: 6 << 30}).config()
	require.Equal(t, DefaultMultipartThreshold, c.MultipartThreshold, "CopyObject copies at most 5 GiB")
}

func TestBackoff(t *testing.T) {
	base, maxWait := 100*time.Millisecond, 5*time.Second
	for attempt := 1; attempt <= 70; attempt++ {
		step := maxWait
		if attempt <= 6 {
			step = base << (attempt - 1)
		}
		for range 50 {
			d := backoff(base, maxWait, attempt)
			require.GreaterOrEqual(t, d, step/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, step, "attempt %d", attempt)
		}
	}
}
