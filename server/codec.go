package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec requestCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A request that cannot be decoded is the caller's mistake, but grpc-go answers it
// with Internal ("failed to unmarshal the received message") before any interceptor
// runs, which trips the "API errors" alert meant for server faults. requestCodec
// decodes requests with grpc's proto codec; when that fails it leaves the message
// empty with the error in a reserved unknown field, and rejectUndecodable, the
// innermost interceptor (after authentication), answers InvalidArgument.

// undecodableField is the field number (the largest protobuf allows) that carries
// the decode error inside the emptied message. A message with it is never handled.
const undecodableField protowire.Number = protowire.MaxValidNumber

type requestCodec struct{ encoding.CodecV2 }

func newRequestCodec() requestCodec { return requestCodec{encoding.GetCodecV2("proto")} }

func (c requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	proto.Reset(m)
	b := protowire.AppendTag(nil, undecodableField, protowire.BytesType)
	m.ProtoReflect().SetUnknown(protowire.AppendString(b, err.Error()))
	return nil
}

// decodeError returns the error requestCodec left in m, if any.
func decodeError(m any) (string, bool) {
	msg, ok := m.(proto.Message)
	if !ok {
		return "", false
	}
	b := msg.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == undecodableField && typ == protowire.BytesType {
			s, k := protowire.ConsumeString(b)
			return s, k >= 0
		}
		k := protowire.ConsumeFieldValue(num, typ, b)
		if k < 0 {
			return "", false
		}
		b = b[k:]
	}
	return "", false
}

func undecodable(method, reason string) error {
	return status.Errorf(codes.InvalidArgument, "%s: the request could not be decoded as its protobuf message (%s); check the client's message type and encoding", method, reason)
}

func rejectUndecodableUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if reason, bad := decodeError(req); bad {
		return nil, undecodable(info.FullMethod, reason)
	}
	return handler(ctx, req)
}

func rejectUndecodableStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &decodingStream{ServerStream: ss, method: info.FullMethod})
}

type decodingStream struct {
	grpc.ServerStream
	method string
}

func (s *decodingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if reason, bad := decodeError(m); bad {
		return undecodable(s.method, reason)
	}
	return nil
}
