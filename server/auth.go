package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// AuthConfig turns on bearer tokens with roles for the API and a cluster secret for
// node-to-node calls. The zero value is no authentication (as before tokens existed).
type AuthConfig struct {
	// Tokens are "ROLE:sha256:HEX": a role (reader, writer, admin) and the SHA-256 of
	// a token, hex (`snapkeep token create` makes both). With none, the API is open.
	Tokens []string
	// InternalToken is the secret every node sends on its calls to the Internal
	// service and the only credential that service accepts; InternalTokenFile reads it
	// from a file. Several secrets (comma-separated, or one per line of the file): the
	// first is sent, every one is accepted — how the secret is rotated without
	// downtime. Required when Tokens are set: otherwise the Internal service would let
	// anyone past the roles.
	InternalToken     string
	InternalTokenFile string
	// Insecure lets the node start without a cluster secret: then anyone who reaches
	// the gRPC port may call the Internal service (propose raw log entries, report
	// restore tasks, run GC). Only for a network nobody else can reach; without it and
	// without a secret the node refuses to start.
	Insecure bool
}

// Role is what a token may do. Each role includes the ones below it.
type Role int

const (
	roleNone Role = iota
	// RoleReader lists, describes, gets and reads status.
	RoleReader
	// RoleWriter also writes the catalog, creates snapshots and starts restores.
	RoleWriter
	// RoleAdmin also drops, cancels, runs GC and manages the cluster.
	RoleAdmin
	// roleInternal is the Internal service: only the cluster secret.
	roleInternal
)

func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RoleWriter:
		return "writer"
	case RoleAdmin:
		return "admin"
	case roleInternal:
		return "internal"
	}
	return "none"
}

// ParseRole parses reader, writer or admin.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "reader":
		return RoleReader, nil
	case "writer":
		return RoleWriter, nil
	case "admin":
		return RoleAdmin, nil
	}
	return roleNone, fmt.Errorf("role %q: want reader, writer or admin", s)
}

// Metadata keys.
const (
	authorizationKey = "authorization"
	internalTokenKey = "snapkeep-internal-token"
)

// HashToken is how tokens are kept at rest: the hex SHA-256 of the token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenLine is the --tokens value for a token with a role.
func TokenLine(role Role, token string) string {
	return role.String() + ":sha256:" + HashToken(token)
}

// methodRule is one entry of the role table.
type methodRule struct {
	role Role
	// audit logs every call (admin or destructive), allowed or not.
	audit bool
}

// methodRoles is the role table, by full gRPC method name. A method missing here needs
// admin (fail closed) and TestRoleTableCoversEveryMethod fails: add new RPCs here.
var methodRoles = map[string]methodRule{
	"/snapkeep.v1.Catalog/CreateDatabase":     {RoleWriter, false},
	"/snapkeep.v1.Catalog/DropDatabase":       {RoleAdmin, true},
	"/snapkeep.v1.Catalog/ListDatabases":      {RoleReader, false},
	"/snapkeep.v1.Catalog/CreateCollection":   {RoleWriter, false},
	"/snapkeep.v1.Catalog/DropCollection":     {RoleAdmin, true},
	"/snapkeep.v1.Catalog/AlterCollection":    {RoleWriter, false},
	"/snapkeep.v1.Catalog/DescribeCollection": {RoleReader, false},
	"/snapkeep.v1.Catalog/ListCollections":    {RoleReader, false},
	"/snapkeep.v1.Catalog/CreatePartition":    {RoleWriter, false},
	"/snapkeep.v1.Catalog/DropPartition":      {RoleAdmin, true},
	"/snapkeep.v1.Catalog/CreateIndex":        {RoleWriter, false},
	"/snapkeep.v1.Catalog/DropIndex":          {RoleAdmin, true},
	"/snapkeep.v1.Catalog/AllocateSegment":    {RoleWriter, false},
	"/snapkeep.v1.Catalog/FlushSegment":       {RoleWriter, false},
	"/snapkeep.v1.Catalog/AllocateIndexBuild": {RoleWriter, false},
	"/snapkeep.v1.Catalog/AddIndexBuild":      {RoleWriter, false},
	// Compaction drops its inputs (their files stay until GC): a writer's routine
	// work, audited because it drops segments.
	"/snapkeep.v1.Catalog/CompactSegments": {RoleWriter, true},
	"/snapkeep.v1.Catalog/DropSegments":    {RoleAdmin, true},
	// Adoption registers existing files as flushed segments in bulk.
	"/snapkeep.v1.Catalog/RegisterSegments": {RoleWriter, true},
	"/snapkeep.v1.Catalog/GetSegment":       {RoleReader, false},
	"/snapkeep.v1.Catalog/ListSegments":     {RoleReader, false},

	"/snapkeep.v1.Snapshots/CreateSnapshot":   {RoleWriter, false},
	"/snapkeep.v1.Snapshots/DropSnapshot":     {RoleAdmin, true},
	"/snapkeep.v1.Snapshots/ListSnapshots":    {RoleReader, false},
	"/snapkeep.v1.Snapshots/DescribeSnapshot": {RoleReader, false},
	// Anyone who may take a snapshot may hold one; releasing a hold exposes the
	// snapshot to drops, an admin's decision.
	"/snapkeep.v1.Snapshots/AddSnapshotHold":    {RoleWriter, true},
	"/snapkeep.v1.Snapshots/RemoveSnapshotHold": {RoleAdmin, true},

	// A policy's retention drops snapshots: managing policies is an admin's.
	"/snapkeep.v1.Policies/CreatePolicy":           {RoleAdmin, true},
	"/snapkeep.v1.Policies/UpdatePolicy":           {RoleAdmin, true},
	"/snapkeep.v1.Policies/DeletePolicy":           {RoleAdmin, true},
	"/snapkeep.v1.Policies/ListPolicies":           {RoleReader, false},
	"/snapkeep.v1.Policies/DescribePolicy":         {RoleReader, false},
	"/snapkeep.v1.Policies/ExecutePolicy":          {RoleWriter, true},
	"/snapkeep.v1.Policies/PreviewPolicyRetention": {RoleReader, false},

	"/snapkeep.v1.Restores/RestoreSnapshot": {RoleWriter, true},
	"/snapkeep.v1.Restores/GetRestoreState": {RoleReader, false},
	"/snapkeep.v1.Restores/ListRestoreJobs": {RoleReader, false},
	"/snapkeep.v1.Restores/CancelRestore":   {RoleAdmin, true},

	"/snapkeep.v1.Repositories/RegisterRepository":       {RoleAdmin, true},
	"/snapkeep.v1.Repositories/UnregisterRepository":     {RoleAdmin, true},
	"/snapkeep.v1.Repositories/ListRepositories":         {RoleReader, false},
	"/snapkeep.v1.Repositories/ExportSnapshot":           {RoleWriter, true},
	"/snapkeep.v1.Repositories/ListRepositorySnapshots":  {RoleReader, false},
	"/snapkeep.v1.Repositories/DeleteRepositorySnapshot": {RoleAdmin, true},
	"/snapkeep.v1.Repositories/CollectRepository":        {RoleAdmin, true},
	"/snapkeep.v1.Repositories/VerifyRepository":         {RoleReader, false},
	"/snapkeep.v1.GC/GCRun":                              {RoleAdmin, true},
	"/snapkeep.v1.GC/GCStatus":                           {RoleReader, false},
	// Deep checks read every data file: an operator's call.
	"/snapkeep.v1.Integrity/Fsck":           {RoleAdmin, false},
	"/snapkeep.v1.Integrity/VerifySnapshot": {RoleAdmin, true},
	// An external collector's question drops the live segments and builds it answers
	// deletable: as destructive as DropSegments.
	"/snapkeep.v1.GC/ReleaseForDeletion": {RoleAdmin, true},

	"/snapkeep.v1.Cluster/ClusterStatus":      {RoleReader, false},
	"/snapkeep.v1.Cluster/ClusterMembers":     {RoleReader, false},
	"/snapkeep.v1.Cluster/RemoveNode":         {RoleAdmin, true},
	"/snapkeep.v1.Cluster/TransferLeadership": {RoleAdmin, true},
	// A writer asks what became of its own writes (the ids are its own, unguessable);
	// the answer costs a Raft barrier, a write.
	"/snapkeep.v1.Cluster/LookupRequests": {RoleWriter, false},

	// Metadata backups hold the whole catalog; restoring one replaces it.
	"/snapkeep.v1.Backup/Backup":        {RoleAdmin, true},
	"/snapkeep.v1.Backup/BackupToStore": {RoleAdmin, true},
	"/snapkeep.v1.Backup/RestoreBackup": {RoleAdmin, true},

	// A storage analysis writes (and deletes) objects in the bucket or repository.
	"/snapkeep.v1.Storage/AnalyzeStorage": {RoleAdmin, true},

	// The gRPC health service answers probes (load balancers, orchestrators) with no
	// token: it tells only whether the node serves.
	"/grpc.health.v1.Health/Check": {roleNone, false},
	"/grpc.health.v1.Health/List":  {roleNone, false},
	"/grpc.health.v1.Health/Watch": {roleNone, false},

	// Server reflection (grpcurl and similar tools) describes the public API: any
	// authenticated caller may read it, as they may read the .proto files.
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {RoleReader, false},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {RoleReader, false},

	// Node to node: the cluster secret only, never a user token.
	"/snapkeep.internal.v1.Internal/Propose":            {roleInternal, false},
	"/snapkeep.internal.v1.Internal/ReadIndex":          {roleInternal, false},
	"/snapkeep.internal.v1.Internal/NodeStatus":         {roleInternal, false},
	"/snapkeep.internal.v1.Internal/LeaseRestoreTasks":  {roleInternal, false},
	"/snapkeep.internal.v1.Internal/ReportRestoreTasks": {roleInternal, false},
	"/snapkeep.internal.v1.Internal/RunGC":              {roleInternal, false},
	"/snapkeep.internal.v1.Internal/GCSchedule":         {roleInternal, false},
	"/snapkeep.internal.v1.Internal/ProbeRepository":    {roleInternal, false},
	"/snapkeep.internal.v1.Internal/AnalyzeStorage":     {roleInternal, false},
	"/snapkeep.internal.v1.Internal/FsckRead":           {roleInternal, false},
	"/snapkeep.internal.v1.Internal/ReadClock":          {roleInternal, false},
}

// internalServicePrefix: any method of the Internal service needs the cluster secret,
// even one missing from the table.
const internalServicePrefix = "/snapkeep.internal.v1.Internal/"

// ruleFor returns the method's rule; a method not in the table needs admin and is audited.
func ruleFor(method string) methodRule {
	if r, ok := methodRoles[method]; ok {
		return r
	}
	if strings.HasPrefix(method, internalServicePrefix) {
		return methodRule{roleInternal, false}
	}
	return methodRule{RoleAdmin, true}
}

// authenticator checks tokens and writes the audit log.
type authenticator struct {
	tokens          map[string]tokenEntry // by hex SHA-256
	internalToken   string                // sent on this node's internal calls
	internalSecrets []string              // accepted on internal calls (internalToken first)
	insecure        bool                  // no secret (--insecure): the Internal service is open
	audit           *slog.Logger
}

type tokenEntry struct {
	role Role
	hash string
}

// newAuthenticator parses the configuration; every bad entry is reported.
func newAuthenticator(cfg AuthConfig, audit *slog.Logger) (*authenticator, error) {
	a := &authenticator{tokens: map[string]tokenEntry{}, audit: audit}
	var errs []error
	for i, line := range cfg.Tokens {
		role, hash, err := parseTokenLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("--tokens entry %d: %w", i+1, err))
			continue
		}
		if prev, dup := a.tokens[hash]; dup && prev.role != role {
			errs = append(errs, fmt.Errorf("--tokens entry %d: the same token is listed as %s and %s", i+1, prev.role, role))
			continue
		}
		a.tokens[hash] = tokenEntry{role: role, hash: hash}
	}
	var secrets string
	switch {
	case cfg.InternalToken != "" && cfg.InternalTokenFile != "":
		errs = append(errs, errors.New("give --internal-token or --internal-token-file, not both"))
	case cfg.InternalTokenFile != "":
		data, err := os.ReadFile(cfg.InternalTokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--internal-token-file: %w", err))
		} else if strings.TrimSpace(string(data)) == "" {
			errs = append(errs, fmt.Errorf("--internal-token-file %s is empty", cfg.InternalTokenFile))
		}
		secrets = string(data)
	default:
		secrets = cfg.InternalToken
	}
	// Several secrets (lines of the file, or comma-separated): the first is sent, all
	// are accepted, so the secret can be rotated node by node.
	for s := range strings.FieldsFuncSeq(secrets, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if len(s) < 16 {
			errs = append(errs, errors.New("an internal token must be at least 16 characters (snapkeep token create --role internal makes one)"))
		}
		a.internalSecrets = append(a.internalSecrets, s)
	}
	if len(a.internalSecrets) > 0 {
		a.internalToken = a.internalSecrets[0]
	}
	switch {
	case len(a.tokens) > 0 && a.internalToken == "":
		errs = append(errs, errors.New("--tokens needs --internal-token or --internal-token-file (the same secret on every node): without it the node-to-node service would be open"))
	case a.internalToken == "" && cfg.InternalTokenFile == "" && !cfg.Insecure:
		errs = append(errs, errors.New("no cluster secret: give every node the same --internal-token-file FILE (snapkeep token create --role internal makes one; env SNAPKEEP_INTERNAL_TOKEN_FILE), or start with --insecure to leave the node-to-node Internal service open to anyone who reaches the gRPC port"))
	}
	a.insecure = a.internalToken == ""
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// parseTokenLine parses "ROLE:sha256:HEX".
func parseTokenLine(line string) (Role, string, error) {
	parts := strings.Split(strings.TrimSpace(line), ":")
	if len(parts) != 3 || parts[1] != "sha256" {
		return roleNone, "", errors.New("want ROLE:sha256:HEX (snapkeep token create prints one)")
	}
	role, err := ParseRole(parts[0])
	if err != nil {
		return roleNone, "", err
	}
	hash := strings.ToLower(parts[2])
	if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
		return roleNone, "", errors.New("the hash must be 64 hex digits (the SHA-256 of the token)")
	}
	return role, hash, nil
}

// enabled reports whether user tokens are checked.
func (a *authenticator) enabled() bool { return len(a.tokens) > 0 }

// caller is who made a call, for the audit log.
type caller struct {
	role  Role
	token string // short fingerprint of the token's hash, never the token
}

// authorize checks the call's credentials against the method's rule.
func (a *authenticator) authorize(ctx context.Context, method string, rule methodRule) (caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if rule.role == roleInternal {
		if a.insecure {
			// Only reachable with --insecure: newAuthenticator refuses a node with
			// neither a secret nor that flag.
			return caller{role: roleInternal}, nil
		}
		got := first(md, internalTokenKey)
		if got == "" {
			return caller{}, status.Errorf(codes.Unauthenticated, "%s is the node-to-node service: only cluster nodes may call it, with the cluster secret (--internal-token)", method)
		}
		match := 0
		for _, secret := range a.internalSecrets {
			match |= subtle.ConstantTimeCompare([]byte(got), []byte(secret))
		}
		if match != 1 {
			return caller{}, status.Errorf(codes.Unauthenticated, "%s: the cluster secret does not match this node's; give every node the same --internal-token", method)
		}
		return caller{role: roleInternal, token: "internal"}, nil
	}
	if !a.enabled() || rule.role == roleNone {
		return caller{}, nil
	}
	auth := first(md, authorizationKey)
	if auth == "" {
		return caller{}, status.Errorf(codes.Unauthenticated, "%s needs a token (role %s or higher): pass --token or set SNAPKEEP_TOKEN (Go client: client.WithToken)", method, rule.role)
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return caller{}, status.Errorf(codes.Unauthenticated, "%s: the authorization metadata must be \"Bearer TOKEN\"", method)
	}
	hash := HashToken(strings.TrimSpace(tok))
	entry, found := a.tokens[hash]
	if !found {
		return caller{}, status.Errorf(codes.Unauthenticated, "%s: the token is not known to this node (revoked, mistyped, or not yet in every node's --tokens)", method)
	}
	c := caller{role: entry.role, token: hash[:12]}
	if entry.role < rule.role {
		return c, status.Errorf(codes.PermissionDenied, "%s needs role %s; this token has role %s: use a token with role %s", method, rule.role, entry.role, rule.role)
	}
	return c, nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// check authorizes a call and returns a function that logs its outcome when the call
// is audited.
func (a *authenticator) check(ctx context.Context, method string) (func(error), error) {
	rule := ruleFor(method)
	c, err := a.authorize(ctx, method, rule)
	if err != nil {
		// Denials are always audited: they are how a misconfiguration or a probe shows.
		a.log(ctx, method, c, "denied", err)
		return nil, err
	}
	if !rule.audit {
		return func(error) {}, nil
	}
	return func(err error) {
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		a.log(ctx, method, c, outcome, err)
	}, nil
}

func (a *authenticator) log(ctx context.Context, method string, c caller, outcome string, err error) {
	attrs := []any{"method", method, "role", c.role.String(), "peer", peerName(ctx), "outcome", outcome}
	if c.token != "" {
		attrs = append(attrs, "token", c.token)
	}
	if err != nil {
		attrs = append(attrs, "code", status.Code(err).String(), "err", status.Convert(err).Message())
	}
	level := slog.LevelInfo
	if outcome == "denied" {
		level = slog.LevelWarn
	}
	a.audit.Log(ctx, level, "audit", attrs...)
}

// peerName is the caller's address and, with a verified client certificate, its name.
func peerName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	name := p.Addr.String()
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.PeerCertificates) > 0 {
		name += " cn=" + ti.State.PeerCertificates[0].Subject.CommonName
	}
	return name
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	done, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	done(err)
	return resp, err
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	done, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	err = handler(srv, ss)
	done(err)
	return err
}

// unaryAuth and streamAuth are the token interceptors as server options
// (grpc.ChainUnaryInterceptor options accumulate with the node's own).
func (s *security) unaryAuth() grpc.ServerOption { return grpc.ChainUnaryInterceptor(s.auth.unary) }

func (s *security) streamAuth() grpc.ServerOption { return grpc.ChainStreamInterceptor(s.auth.stream) }
