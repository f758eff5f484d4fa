package fsm

import (
	"strconv"
	"strings"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Human-readable names of enum values, for error messages.

func formatUint(v uint64) string { return strconv.FormatUint(v, 10) }

func trimEnum(s, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(s, prefix))
}

func stateName(s fsmpb.CollectionState) string {
	return trimEnum(s.String(), "COLLECTION_STATE_")
}

func segmentStateName(s fsmpb.SegmentState) string {
	return trimEnum(s.String(), "SEGMENT_STATE_")
}

func buildStateName(s fsmpb.BuildState) string {
	return trimEnum(s.String(), "BUILD_STATE_")
}

func kindName(k fsmpb.FileKind) string {
	return trimEnum(k.String(), "FILE_KIND_")
}

func dropReasonText(s *fsmpb.Segment) string {
	switch s.DropReason {
	case fsmpb.DropReason_DROP_REASON_COMPACTED:
		ids := make([]string, len(s.CompactedTo))
		for i, id := range s.CompactedTo {
			ids[i] = formatUint(id)
		}
		if len(ids) == 0 {
			return "compacted away"
		}
		return "compacted into " + strings.Join(ids, ", ")
	case fsmpb.DropReason_DROP_REASON_USER:
		return "dropped on request"
	case fsmpb.DropReason_DROP_REASON_LEASE_EXPIRED:
		return "its allocation lease expired before it was flushed"
	case fsmpb.DropReason_DROP_REASON_PARTITION_DROPPED:
		return "its partition was dropped"
	case fsmpb.DropReason_DROP_REASON_COLLECTION_DROPPED:
		return "its collection was dropped"
	case fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED:
		return "its restore failed or was cancelled"
	case fsmpb.DropReason_DROP_REASON_RELEASED:
		return "released to an external collector"
	}
	return "dropped"
}
