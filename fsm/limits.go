package fsm

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits enforced on every command, before it is proposed and again in Apply. They are
// constants, not configuration: every node must apply the same log the same way.
const (
	MaxNameLength             = 255
	MaxSchemaBytes            = 1 << 20
	MaxDescriptionBytes       = 4 << 10
	MaxProperties             = 64
	MaxPropertyKeyBytes       = 255
	MaxPropertyValueBytes     = 4 << 10
	MaxDatabases              = 256
	MaxCollectionsPerDB       = 65536
	MaxPartitions             = 1024
	MaxIndexes                = 64
	MaxFilesPerSegment        = 10000
	MaxSegmentsPerCommand     = 10000
	MaxCompactionOutputs      = 1024
	MaxKeyBytes               = 1024
	MaxRequestIDBytes         = 128
	MaxNodeIDBytes            = 128
	MaxLease                  = int64(7 * 24 * 3600 * 1e9)
	DefaultPartition          = "_default"
	DefaultDatabase           = "default"
	RequestWindow             = 20000    // request ids remembered for deduplication
	RequestWindowBytes        = 64 << 20 // and at most this much of their results
	MaxSnapshotsPerCollection = 100000   // the highest per-collection limit a server may configure
	maxAddressBytes           = 255
	maxVersionBytes           = 64
	maxIndexParamKeyBytes     = MaxPropertyKeyBytes
	maxIndexParamValBytes     = MaxPropertyValueBytes
	maxIndexParams            = MaxProperties
	minLease                  = int64(1e9)
	maxFieldID                = int64(1) << 40
	maxRowCount               = int64(1) << 48
	maxSegmentFileSizeByte    = uint64(5) << 40 // the S3 object size limit
)

// ValidateName checks a database, collection, partition or index name: 1–255
// characters from [A-Za-z0-9_-], starting with a letter or an underscore.
func ValidateName(what, name string) error { return validateName(what, name, false) }

// ValidateSnapshotName checks a snapshot name: like ValidateName, with dots allowed
// after the first character (dated names such as "nightly-2026.12.02").
func ValidateSnapshotName(name string) error { return validateName("snapshot", name, true) }

func validateName(what, name string, dots bool) error {
	if name == "" {
		return invalidf("%s name is empty", what)
	}
	if len(name) > MaxNameLength {
		return invalidf("%s name %.40q… is %d bytes long; the limit is %d", what, name, len(name), MaxNameLength)
	}
	for i, r := range name {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
			(i > 0 && (r == '-' || (r >= '0' && r <= '9') || (dots && r == '.')))
		if !ok {
			if i == 0 {
				return invalidf("%s name %q must start with a letter or an underscore", what, name)
			}
			allowed := "letters, digits, '_' and '-'"
			if dots {
				allowed = "letters, digits, '_', '-' and '.'"
			}
			return invalidf("%s name %q has character %q at byte %d; only %s are allowed", what, name, r, i, allowed)
		}
	}
	return nil
}

// ValidateProperties checks a property (or index parameter) map against the limits.
func ValidateProperties(what string, props map[string]string) error {
	if len(props) > MaxProperties {
		return invalidf("%d %s given; the limit is %d", len(props), what, MaxProperties)
	}
	for k, v := range props {
		if err := validatePropertyKey(what, k); err != nil {
			return err
		}
		if len(v) > MaxPropertyValueBytes {
			return invalidf("%s %q: value is %d bytes; the limit is %d", what, k, len(v), MaxPropertyValueBytes)
		}
		if !utf8.ValidString(v) {
			return invalidf("%s %q: value is not valid UTF-8", what, k)
		}
	}
	return nil
}

func validatePropertyKey(what, k string) error {
	if k == "" {
		return invalidf("%s key is empty", what)
	}
	if len(k) > MaxPropertyKeyBytes {
		return invalidf("%s key %.40q… is %d bytes; the limit is %d", what, k, len(k), MaxPropertyKeyBytes)
	}
	if !utf8.ValidString(k) || strings.ContainsFunc(k, isControl) {
		return invalidf("%s key %q has invalid characters", what, k)
	}
	return nil
}

// ValidateRequestID checks a client's deduplication id (empty means none).
func ValidateRequestID(id string) error {
	if len(id) > MaxRequestIDBytes {
		return invalidf("request id is %d bytes; the limit is %d", len(id), MaxRequestIDBytes)
	}
	if strings.ContainsFunc(id, isControl) || !utf8.ValidString(id) {
		return invalidf("request id %q has invalid characters", id)
	}
	return nil
}

// ValidateLease checks a lease length in nanoseconds (0 is replaced by a default before
// proposing).
func ValidateLease(lease int64) error {
	if lease < minLease || lease > MaxLease {
		return invalidf("lease of %v is out of range: it must be between 1s and 168h", durationString(lease))
	}
	return nil
}

func durationString(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
