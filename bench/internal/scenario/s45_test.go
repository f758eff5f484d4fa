package scenario

import (
	"encoding/base64"
	"testing"
)

func TestCommaInt(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 200000: "200,000", 1234567: "1,234,567", -2000: "-2,000"} {
		if got := commaInt(n); got != want {
			t.Errorf("commaInt(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseCounter(t *testing.T) {
	text := "# HELP snapkeep_restore_copied_files_total Files.\n# TYPE snapkeep_restore_copied_files_total counter\n" +
		"snapkeep_restore_copied_files_total_other 7\nsnapkeep_restore_copied_files_total 1234\n"
	got, err := parseCounter(text, copiedFilesMetric)
	if err != nil || got != 1234 {
		t.Fatalf("parseCounter = %v, %v; want 1234", got, err)
	}
	if _, err := parseCounter("other 1\n", copiedFilesMetric); err == nil {
		t.Fatal("a missing counter parsed")
	}
	// Labelled by job kind: one kind, or every kind summed.
	labelled := "snapkeep_restore_copied_files_total{kind=\"export\"} 10\n" +
		"snapkeep_restore_copied_files_total{kind=\"repository_restore\"} 20\n" +
		"snapkeep_restore_copied_files_total{kind=\"restore\"} 300\n" +
		"snapkeep_restore_copied_files_totally{kind=\"export\"} 4000\n"
	for _, tc := range []struct {
		label []string
		want  float64
	}{{nil, 330}, {[]string{`kind="export"`}, 10}, {[]string{`kind="repository_restore"`}, 20}, {[]string{`kind="restore"`}, 300}} {
		if got, err := parseCounter(labelled, copiedFilesMetric, tc.label...); err != nil || got != tc.want {
			t.Errorf("parseCounter(%v) = %v, %v; want %v", tc.label, got, err, tc.want)
		}
	}
	if _, err := parseCounter(labelled, copiedFilesMetric, `kind="other"`); err == nil {
		t.Error("a kind with no series parsed")
	}
}

func TestPosixXattrsMatchVersitygw(t *testing.T) {
	// The xattrs versitygw's PutObject left on a 424-byte object (read back with
	// getxattr): the ETag is the quoted MD5 and the checksum the base64 of the
	// big-endian CRC-32C.
	x := posixXattrs([]byte{}, 0x4c3a949b)
	if x[0][0] != "user.etag" || x[0][1] != `"d41d8cd98f00b204e9800998ecf8427e"` {
		t.Errorf("etag %v", x[0])
	}
	want := `{"Algorithm":"CRC32C","Type":"FULL_OBJECT","CRC32":null,"CRC32C":"TDqUmw==","SHA1":null,"SHA256":null,"CRC64NVME":null,"SHA512":null,"MD5":null,"XXHASH64":null,"XXHASH3":null,"XXHASH128":null}`
	if x[1][0] != "user.checksums" || x[1][1] != want {
		t.Errorf("checksums %v", x[1])
	}
	if b, _ := base64.StdEncoding.DecodeString("TDqUmw=="); len(b) != 4 || b[0] != 0x4c {
		t.Errorf("the sample decodes to %x", b)
	}
	if x[2] != [2]string{"user.content-type", "application/octet-stream"} {
		t.Errorf("content type %v", x[2])
	}
}

func TestPairRatioMedian(t *testing.T) {
	// Pairs 0.5, 0.8, 0.9 (and a zero baseline left out): median 0.8, while the ratio
	// of the medians would be 600/1000 = 0.6.
	got := pairRatioMedian([]float64{500, 800, 450, 7}, []float64{1000, 1000, 500, 0})
	if got != 0.8 {
		t.Fatalf("pairRatioMedian = %v, want 0.8", got)
	}
}
