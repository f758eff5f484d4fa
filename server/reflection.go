package server

import (
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// registerReflection turns on gRPC server reflection (both the v1 and the older
// v1alpha protocol, which some tools still ask first) so that grpcurl and similar
// tools can list and call the API without the .proto files. Reflection is
// role-checked like every method (a reader may use it: it reveals only the public
// API's shape) and lists the public services only: the node-to-node Internal service
// is nobody's business but the nodes'.
func registerReflection(s *grpc.Server) {
	opts := reflection.ServerOptions{Services: publicServices{s}}
	reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
}

// publicServices is the server's services without the Internal one.
type publicServices struct{ s *grpc.Server }

func (p publicServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := map[string]grpc.ServiceInfo{}
	for name, info := range p.s.GetServiceInfo() {
		if !strings.HasPrefix("/"+name+"/", internalServicePrefix) {
			out[name] = info
		}
	}
	return out
}
