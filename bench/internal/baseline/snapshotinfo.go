package baseline

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// SnapshotState is a snapshot record's state in etcd.
type SnapshotState int32

const (
	StatePending   SnapshotState = 1
	StateCommitted SnapshotState = 2
	StateDeleting  SnapshotState = 3
)

// SnapshotInfo is the snapshot record Milvus keeps in etcd (datapb.SnapshotInfo's
// fields per SEED-FACTS.md). It is encoded as protobuf with protowire — the wire
// format protoc's generated code produces for these fields, without a .proto file.
type SnapshotInfo struct {
	ID               int64         // field 1
	CollectionID     int64         // 2
	CreateTS         uint64        // 3, a hybrid timestamp
	Name             string        // 4
	Description      string        // 5
	S3Location       string        // 6, the metadata JSON's key
	PartitionIDs     []int64       // 7, packed
	State            SnapshotState // 8
	PendingStartTime int64         // 9, unix ms
}

// Marshal encodes the record.
func (s *SnapshotInfo) Marshal() []byte {
	b := make([]byte, 0, 320)
	varint := func(num protowire.Number, v uint64) {
		if v != 0 {
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		}
	}
	str := func(num protowire.Number, v string) {
		if v != "" {
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	varint(1, uint64(s.ID))
	varint(2, uint64(s.CollectionID))
	varint(3, s.CreateTS)
	str(4, s.Name)
	str(5, s.Description)
	str(6, s.S3Location)
	if len(s.PartitionIDs) > 0 {
		var packed []byte
		for _, id := range s.PartitionIDs {
			packed = protowire.AppendVarint(packed, uint64(id))
		}
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, packed)
	}
	varint(8, uint64(s.State))
	varint(9, uint64(s.PendingStartTime))
	return b
}

// UnmarshalSnapshotInfo decodes a record written by Marshal (unknown fields are
// skipped, as protobuf does).
func UnmarshalSnapshotInfo(b []byte) (*SnapshotInfo, error) {
	s := &SnapshotInfo{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("snapshot info: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("snapshot info field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 1:
				s.ID = int64(v)
			case 2:
				s.CollectionID = int64(v)
			case 3:
				s.CreateTS = v
			case 8:
				s.State = SnapshotState(v)
			case 9:
				s.PendingStartTime = int64(v)
			}
		case typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("snapshot info field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 4:
				s.Name = string(v)
			case 5:
				s.Description = string(v)
			case 6:
				s.S3Location = string(v)
			case 7:
				for len(v) > 0 {
					id, n := protowire.ConsumeVarint(v)
					if n < 0 {
						return nil, errors.New("snapshot info: bad packed partition ids")
					}
					s.PartitionIDs = append(s.PartitionIDs, int64(id))
					v = v[n:]
				}
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, fmt.Errorf("snapshot info field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return s, nil
}

// TestSnapshotInfo is a record as a user's CreateSnapshot makes it: a name, a
// description of typical length, the collection's partitions and a create time.
func TestSnapshotInfo(id, collectionID int64, name string, partitionIDs []int64) SnapshotInfo {
	return SnapshotInfo{ID: id, CollectionID: collectionID, Name: name,
		Description:  "nightly snapshot before the re-index of the product catalog; keep for 30 days; owner search-platform@example.com (ticket OPS-4211)",
		PartitionIDs: partitionIDs, CreateTS: 463_000_000_000_000_000 + uint64(id%1_000_000)}
}
