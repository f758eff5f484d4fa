package analyze

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/snapkeep/snapkeep/objstore"
)

func isNotFound(err error) bool { return errors.Is(err, objstore.ErrNotFound) }

// errorShape describes an error as the server sent it: HTTP status and S3 code.
func errorShape(err error) string {
	var parts []string
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		parts = append(parts, fmt.Sprintf("HTTP %d", resp.HTTPStatusCode()))
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() != "" {
		parts = append(parts, api.ErrorCode())
	}
	if len(parts) == 0 {
		return "no HTTP status (" + err.Error() + ")"
	}
	return strings.Join(parts, " ")
}

func httpStatus(err error) int {
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode()
	}
	return 0
}

func checkReadAfterWrite(ctx context.Context, e *env) (Outcome, string, error) {
	data := body("read-after-write", 3000)
	if _, err := e.put(ctx, "raw/object", data, withCRC(data)); err != nil {
		return "", "", err
	}
	key := e.prefix + "raw/object"
	got, err := e.read(ctx, key)
	if isNotFound(err) {
		return Unsafe, "GET right after a successful PUT answered not found", nil
	}
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, data) {
		return Unsafe, fmt.Sprintf("GET right after PUT returned %d bytes that differ from the %d written", len(got), len(data)), nil
	}
	info, err := e.store.Head(ctx, key)
	if isNotFound(err) {
		return Unsafe, "GET returned the object but the HEAD after it answered not found", nil
	}
	if err != nil {
		return "", "", err
	}
	if info.Size != int64(len(data)) {
		return Unsafe, fmt.Sprintf("HEAD right after PUT reported size %d, not %d", info.Size, len(data)), nil
	}
	return OK, fmt.Sprintf("PUT of %d bytes, then GET returned exactly those bytes and HEAD their size", len(data)), nil
}

func checkOverwrite(ctx context.Context, e *env) (Outcome, string, error) {
	v1, v2 := body("overwrite v1", 1000), body("overwrite v2", 1500)
	if _, err := e.put(ctx, "overwrite/object", v1, withCRC(v1)); err != nil {
		return "", "", err
	}
	if _, err := e.put(ctx, "overwrite/object", v2, withCRC(v2)); err != nil {
		return "", "", err
	}
	key := e.prefix + "overwrite/object"
	got, err := e.read(ctx, key)
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, v2) {
		if bytes.Equal(got, v1) {
			return Unsafe, "GET right after overwriting an object returned the old content", nil
		}
		return Unsafe, fmt.Sprintf("GET right after overwriting an object returned %d bytes that are neither version", len(got)), nil
	}
	info, err := e.store.Head(ctx, key)
	if err != nil {
		return "", "", err
	}
	if info.Size != int64(len(v2)) {
		return Unsafe, fmt.Sprintf("HEAD after the overwrite reported size %d (old %d, new %d)", info.Size, len(v1), len(v2)), nil
	}
	if info.HasCRC32C && info.CRC32C != CRC32C(v2) {
		return Unsafe, fmt.Sprintf("HEAD after the overwrite reported CRC-32C %08x, not the new content's %08x", info.CRC32C, CRC32C(v2)), nil
	}
	return OK, "PUT 1000 bytes, PUT 1500 other bytes to the same key, then GET returned the new bytes and HEAD the new size" + crcNote(info), nil
}

func crcNote(info objstore.ObjectInfo) string {
	if info.HasCRC32C {
		return " and CRC-32C"
	}
	return " (HEAD reported no CRC-32C)"
}

func checkListAfterWrite(ctx context.Context, e *env) (Outcome, string, error) {
	const n = 5
	want := map[string]int64{}
	for i := range n {
		data := body(fmt.Sprintf("list %d", i), 100+i)
		if _, err := e.put(ctx, fmt.Sprintf("list/k-%02d", i), data, objstore.PutOptions{}); err != nil {
			return "", "", err
		}
		want[fmt.Sprintf("%slist/k-%02d", e.prefix, i)] = int64(len(data))
	}
	page, err := e.store.List(ctx, e.prefix+"list/", "", 0)
	if err != nil {
		return "", "", err
	}
	seen := map[string]bool{}
	for _, o := range page.Objects {
		if size, ok := want[o.Key]; ok && size != o.Size {
			return Unsafe, fmt.Sprintf("listing right after the PUTs showed %q with size %d, not %d", o.Key, o.Size, size), nil
		}
		seen[o.Key] = true
	}
	var missing []string
	for k := range want {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Unsafe, fmt.Sprintf("listing right after %d acknowledged PUTs missed %d of them: %q", n, len(missing), missing), nil
	}
	return OK, fmt.Sprintf("%d PUTs, then one ListObjectsV2 of their prefix showed all of them with their sizes", n), nil
}

// orderKeys are names whose byte order differs from other orders (case, '-'
// and ' ' before '/', UTF-8 after ASCII, escaped-looking names).
var orderKeys = []string{"a b", "a+b", "a-b", "a/b", "a0", "aa", "B", "é", "~x", "a%2Fb"}

func checkListOrder(ctx context.Context, e *env) (Outcome, string, error) {
	var want []string
	for _, k := range orderKeys {
		if _, err := e.put(ctx, "order/"+k, []byte(k), objstore.PutOptions{}); err != nil {
			return "", "", err
		}
		want = append(want, e.prefix+"order/"+k)
	}
	slices.Sort(want) // Go compares strings bytewise: S3's order
	const pageSize = 3
	var got []string
	token, pages := "", 0
	for {
		page, err := e.store.List(ctx, e.prefix+"order/", token, pageSize)
		if err != nil {
			return "", "", err
		}
		pages++
		if len(page.Objects) > pageSize {
			return Unsafe, fmt.Sprintf("a page asked for at most %d keys returned %d", pageSize, len(page.Objects)), nil
		}
		for _, o := range page.Objects {
			got = append(got, o.Key)
		}
		if page.NextToken == "" {
			break
		}
		if len(page.Objects) == 0 || pages > len(want) {
			return Unsafe, fmt.Sprintf("pagination does not end: page %d had %d keys and a continuation token", pages, len(page.Objects)), nil
		}
		token = page.NextToken
	}
	if !slices.Equal(got, want) {
		return Unsafe, fmt.Sprintf("%d pages of at most %d keys listed %q; byte order is %q", pages, pageSize, trim(got, e.prefix), trim(want, e.prefix)), nil
	}
	return OK, fmt.Sprintf("%d keys (%q) listed in %d pages of at most %d through continuation tokens, each once, in byte order", len(want), orderKeys, pages, pageSize), nil
}

func trim(keys []string, prefix string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, prefix+"order/")
	}
	return out
}

func checkConditionalPut(ctx context.Context, e *env) (Outcome, string, error) {
	first, second := body("conditional first", 500), body("conditional second", 700)
	if _, err := e.put(ctx, "cond/existing", first, withCRC(first)); err != nil {
		return "", "", err
	}
	_, err := e.put(ctx, "cond/existing", second, objstore.PutOptions{IfNoneMatch: true})
	switch {
	case err == nil:
		got, rerr := e.read(ctx, e.prefix+"cond/existing")
		if rerr == nil && bytes.Equal(got, second) {
			return Unsafe, "PUT with If-None-Match: * over an existing object succeeded and replaced it: the server ignores the condition", nil
		}
		return Unsafe, "PUT with If-None-Match: * over an existing object succeeded (the server did not refuse it)", nil
	case !errors.Is(err, objstore.ErrPreconditionFailed):
		return Unsafe, "PUT with If-None-Match: * over an existing object failed with " + errorShape(err) + ", not 412 PreconditionFailed or 409 ConditionalRequestConflict: " + err.Error(), nil
	}
	shape := errorShape(err)
	got, err := e.read(ctx, e.prefix+"cond/existing")
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, first) {
		return Unsafe, "PUT with If-None-Match: * was refused (" + shape + ") but the object's content changed", nil
	}
	fresh := body("conditional fresh", 300)
	if _, err := e.put(ctx, "cond/new", fresh, objstore.PutOptions{IfNoneMatch: true}); err != nil {
		return Unsafe, "PUT with If-None-Match: * to a key with no object failed: " + err.Error(), nil
	}
	return OK, "PUT with If-None-Match: * over an existing object was refused with " + shape + " and the object kept its content; to a new key it succeeded", nil
}

func checkConcurrentWriters(ctx context.Context, e *env) (Outcome, string, error) {
	const writers = 6
	bodies := make([][]byte, writers)
	for i := range bodies {
		bodies[i] = body(fmt.Sprintf("writer %d", i), 2000+100*i)
	}
	plain := e.key("concurrent/plain")
	create := e.key("concurrent/create")
	var wg sync.WaitGroup
	plainErrs := make([]error, writers)
	createErrs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, plainErrs[i] = e.store.Put(ctx, plain, bytes.NewReader(bodies[i]), int64(len(bodies[i])), withCRC(bodies[i]))
		})
		wg.Go(func() {
			_, createErrs[i] = e.store.Put(ctx, create, bytes.NewReader(bodies[i]), int64(len(bodies[i])), objstore.PutOptions{IfNoneMatch: true})
		})
	}
	wg.Wait()
	if err := errors.Join(plainErrs...); err != nil {
		return "", "", fmt.Errorf("concurrent PUTs: %w", err)
	}
	got, err := e.read(ctx, plain)
	if err != nil {
		return "", "", err
	}
	if !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, got) }) {
		return Unsafe, fmt.Sprintf("after %d concurrent PUTs to one key, GET returned %d bytes that are none of the bodies written (torn or mixed)", writers, len(got)), nil
	}
	winners := 0
	for _, err := range createErrs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, objstore.ErrPreconditionFailed):
			return "", "", fmt.Errorf("concurrent conditional PUTs: %w", err)
		}
	}
	stored, err := e.read(ctx, create)
	if err != nil {
		return "", "", err
	}
	detail := fmt.Sprintf("%d concurrent PUTs to one key left exactly one writer's whole body", writers)
	if winners != 1 {
		return Unsafe, fmt.Sprintf("%s; but %d of %d concurrent PUTs with If-None-Match: * to one new key succeeded (exactly one must)", detail, winners, writers), nil
	}
	winner := slices.IndexFunc(createErrs, func(err error) bool { return err == nil })
	if !bytes.Equal(stored, bodies[winner]) {
		return Unsafe, fmt.Sprintf("%s; one of %d concurrent conditional PUTs succeeded but the key holds another body", detail, writers), nil
	}
	return OK, fmt.Sprintf("%s; of %d concurrent PUTs with If-None-Match: * to one new key exactly one succeeded (the others: 412/409) and its body is stored", detail, writers), nil
}

func checkCopyChecksum(ctx context.Context, e *env) (Outcome, string, error) {
	data := body("copy source", 4000)
	want := CRC32C(data)
	if _, err := e.put(ctx, "copy/src", data, withCRC(data)); err != nil {
		return "", "", err
	}
	info, err := e.store.Copy(ctx, e.prefix+"copy/src", e.key("copy/dst"))
	if err != nil {
		return Unsupported, "CopyObject failed: " + errorShape(err) + ": " + err.Error(), nil
	}
	head, err := e.store.Head(ctx, e.prefix+"copy/dst")
	if err != nil {
		return "", "", err
	}
	got, err := e.read(ctx, e.prefix+"copy/dst")
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, data) {
		return Unsafe, "CopyObject succeeded but the copy's bytes differ from the source's", nil
	}
	var parts []string
	outcome := OK
	switch {
	case info.HasCRC32C && info.CRC32C == want:
		parts = append(parts, "CopyObject (x-amz-checksum-algorithm: CRC32C) response carried x-amz-checksum-crc32c equal to the copied bytes'")
	case info.HasCRC32C:
		return Unsafe, fmt.Sprintf("CopyObject response carried CRC-32C %08x but the copied bytes' is %08x", info.CRC32C, want), nil
	default:
		outcome = Unsupported
		parts = append(parts, "CopyObject (x-amz-checksum-algorithm: CRC32C) response carried no checksum")
	}
	switch {
	case head.HasCRC32C && head.CRC32C == want:
		parts = append(parts, "HEAD of the copy returned x-amz-checksum-crc32c equal to the source's")
	case head.HasCRC32C:
		return Unsafe, fmt.Sprintf("%s; HEAD of the copy returned CRC-32C %08x but its bytes' is %08x", strings.Join(parts, "; "), head.CRC32C, want), nil
	default:
		parts = append(parts, "HEAD of the copy returned no CRC-32C")
	}
	detail := strings.Join(parts, "; ")
	if outcome == Unsupported {
		if head.HasCRC32C {
			detail += ": restores verify each copy with a HEAD"
		} else {
			detail += ": restores verify each copy by reading it back"
		}
	}
	return outcome, detail, nil
}

// checkChecksumEcho overwrites a checksummed object without a checksum and checks
// that neither HEAD nor a copy reports the old checksum: a server that keeps request
// headers as metadata (not checksums of what it stores) would vouch for bytes it
// never checked.
func checkChecksumEcho(ctx context.Context, e *env) (Outcome, string, error) {
	v1, v2 := body("echo v1", 900), body("echo v2", 900)
	if _, err := e.put(ctx, "echo/src", v1, withCRC(v1)); err != nil {
		return "", "", err
	}
	if _, err := e.put(ctx, "echo/src", v2, objstore.PutOptions{}); err != nil {
		return "", "", err
	}
	old, cur := CRC32C(v1), CRC32C(v2)
	head, err := e.store.Head(ctx, e.prefix+"echo/src")
	if err != nil {
		return "", "", err
	}
	if head.HasCRC32C && head.CRC32C != cur {
		stale := ""
		if head.CRC32C == old {
			stale = " (the previous version's: stored metadata echoed back)"
		}
		return Unsafe, fmt.Sprintf("after overwriting a checksummed object without a checksum, HEAD reported CRC-32C %08x%s, not the content's %08x", head.CRC32C, stale, cur), nil
	}
	info, err := e.store.Copy(ctx, e.prefix+"echo/src", e.key("echo/dst"))
	if err != nil {
		return Unsupported, "CopyObject failed: " + errorShape(err), nil
	}
	if info.HasCRC32C && info.CRC32C != cur {
		stale := ""
		if info.CRC32C == old {
			stale = " (the previous version's: stored metadata echoed back)"
		}
		return Unsafe, fmt.Sprintf("CopyObject of an object overwritten without a checksum reported CRC-32C %08x%s, not the content's %08x", info.CRC32C, stale, cur), nil
	}
	dst, err := e.store.Head(ctx, e.prefix+"echo/dst")
	if err != nil {
		return "", "", err
	}
	if dst.HasCRC32C && dst.CRC32C != cur {
		return Unsafe, fmt.Sprintf("HEAD of the copy reported CRC-32C %08x, not the content's %08x", dst.CRC32C, cur), nil
	}
	reported := func(has bool) string {
		if has {
			return "the new content's CRC-32C (computed)"
		}
		return "no CRC-32C"
	}
	return OK, fmt.Sprintf("PUT with a CRC-32C, then an overwrite without one: HEAD reported %s, the CopyObject response %s, HEAD of the copy %s; never the old value",
		reported(head.HasCRC32C), reported(info.HasCRC32C), reported(dst.HasCRC32C)), nil
}

func checkUploadPartCopy(ctx context.Context, e *env) (Outcome, string, error) {
	src, data, err := e.largeObject(ctx)
	if err != nil {
		return "", "", err
	}
	parts := (int64(len(data)) + minPartSize - 1) / minPartSize
	info, err := e.store.MultipartCopy(ctx, src, e.key("large/copy"), int64(len(data)), minPartSize)
	if err != nil {
		return Unsupported, fmt.Sprintf("MultipartCopy (CreateMultipartUpload, UploadPartCopy × %d, CompleteMultipartUpload) failed with %s: %v", parts, errorShape(err), err), nil
	}
	got, err := e.read(ctx, e.prefix+"large/copy")
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, data) {
		return Unsafe, fmt.Sprintf("UploadPartCopy of %d bytes in %d parts completed but the copy's %d bytes differ from the source's", len(data), parts, len(got)), nil
	}
	detail := fmt.Sprintf("UploadPartCopy of a %d-byte source in %d parts of 5 MiB completed and the copy reads back equal", len(data), parts)
	switch {
	case info.HasCRC32C && info.CRC32C == CRC32C(data):
		detail += "; the full-object CRC-32C combined from the parts' checksums is the bytes'"
	case info.HasCRC32C:
		return Unsafe, fmt.Sprintf("%s, but the reported full-object CRC-32C %08x is not the bytes' %08x", detail, info.CRC32C, CRC32C(data)), nil
	default:
		detail += "; no full-object CRC-32C was reported (the server gave none, or part checksums that cannot be the parts', so objstore copied without checksums): such copies are verified by reading back"
	}
	return OK, detail, nil
}

// largeObject writes (once) the run's large object, with its CRC-32C.
func (e *env) largeObject(ctx context.Context) (string, []byte, error) {
	e.largeOnce.Do(func() { e.largeData = body("large object", int(e.large)) })
	data := e.largeData
	key := e.prefix + "large/src"
	if info, err := e.store.Head(ctx, key); err == nil && info.Size == e.large {
		return key, data, nil
	}
	if _, err := e.put(ctx, "large/src", data, withCRC(data)); err != nil {
		return "", nil, err
	}
	return key, data, nil
}

func checkDeleteObjects(ctx context.Context, e *env) (Outcome, string, error) {
	data := []byte("to be deleted")
	if _, err := e.put(ctx, "delete/present", data, objstore.PutOptions{}); err != nil {
		return "", "", err
	}
	present, missing := e.prefix+"delete/present", e.key("delete/missing")
	res, err := e.store.Delete(ctx, []string{present, missing})
	if err != nil {
		return "", "", err
	}
	if len(res.Failed) > 0 {
		var failed []string
		for k, err := range res.Failed {
			failed = append(failed, fmt.Sprintf("%s: %v", strings.TrimPrefix(k, e.prefix), err))
		}
		slices.Sort(failed)
		return Unsupported, "DeleteObjects (Quiet=false) of an existing and a missing key did not confirm every key (a missing key must count as deleted): " + strings.Join(failed, "; "), nil
	}
	if _, err := e.store.Head(ctx, present); err == nil {
		return Unsupported, "DeleteObjects reported the existing key deleted but HEAD still finds it", nil
	} else if !isNotFound(err) {
		return "", "", err
	}
	return OK, "DeleteObjects (Quiet=false) of an existing and a missing key reported both deleted (or the missing one NoSuchKey), and HEAD no longer finds the existing one", nil
}

func checkNotFound(ctx context.Context, e *env) (Outcome, string, error) {
	missing := e.key("errors/missing")
	var bad []string
	var shapes []string
	_, _, err := e.store.Get(ctx, missing)
	if isNotFound(err) {
		shapes = append(shapes, "GET: "+errorShape(err))
	} else {
		bad = append(bad, fmt.Sprintf("GET of a missing key: %s", describe(err)))
	}
	_, err = e.store.Head(ctx, missing)
	if isNotFound(err) {
		shapes = append(shapes, "HEAD: "+errorShape(err))
	} else {
		bad = append(bad, fmt.Sprintf("HEAD of a missing key: %s", describe(err)))
	}
	_, err = e.store.GetRange(ctx, missing, 0, 10)
	if isNotFound(err) {
		shapes = append(shapes, "ranged GET: "+errorShape(err))
	} else {
		bad = append(bad, fmt.Sprintf("ranged GET of a missing key: %s", describe(err)))
	}
	_, err = e.store.Copy(ctx, missing, e.key("errors/copied"))
	if isNotFound(err) {
		shapes = append(shapes, "CopyObject from it: "+errorShape(err))
	} else {
		bad = append(bad, fmt.Sprintf("CopyObject from a missing key: %s", describe(err)))
	}
	if len(bad) > 0 {
		return Unsafe, "not recognisable as a missing object (404 NoSuchKey/NotFound): " + strings.Join(bad, "; "), nil
	}
	return OK, "a missing key answered " + strings.Join(shapes, ", "), nil
}

func describe(err error) string {
	if err == nil {
		return "succeeded"
	}
	return errorShape(err) + ": " + err.Error()
}

func checkRange(ctx context.Context, e *env) (Outcome, string, error) {
	data := body("range", 1000)
	if _, err := e.put(ctx, "errors/object", data, objstore.PutOptions{}); err != nil {
		return "", "", err
	}
	key := e.prefix + "errors/object"
	rc, err := e.store.GetRange(ctx, key, 100, 50)
	if err != nil {
		return Unsafe, "GET of bytes 100-149 failed: " + describe(err), nil
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, data[100:150]) {
		return Unsafe, fmt.Sprintf("GET with Range: bytes=100-149 returned %d bytes that are not those", len(got)), nil
	}
	rc, err = e.store.GetRange(ctx, key, 2000, 10)
	if err == nil {
		rc.Close()
		return Unsafe, "GET with Range: bytes=2000-2009 of a 1000-byte object succeeded", nil
	}
	if isNotFound(err) {
		return Unsafe, "GET with a range past the end of an existing object answered not found (" + errorShape(err) + ")", nil
	}
	if httpStatus(err) != http.StatusRequestedRangeNotSatisfiable {
		return Unsupported, "GET with Range: bytes=100-149 returned those bytes; a range past the end failed with " + describe(err) + ", not 416 InvalidRange", nil
	}
	return OK, "GET with Range: bytes=100-149 returned those bytes; a range past the end failed with " + errorShape(err), nil
}

func checkAccessDenied(ctx context.Context, e *env) (Outcome, string, error) {
	if e.cfg.Bucket == "" || e.cfg.AccessKey == "" {
		return Unsupported, "not checked: the store's static credentials are not known here (the default AWS credential chain is in use)", nil
	}
	data := []byte("access check")
	if _, err := e.put(ctx, "errors/access", data, objstore.PutOptions{}); err != nil {
		return "", "", err
	}
	key := e.prefix + "errors/access"
	try := func(access, secret string) (string, bool, error) {
		cfg := e.cfg
		cfg.AccessKey, cfg.SecretKey, cfg.SessionToken, cfg.RetryMaxAttempts = access, secret, "", 1
		s, err := objstore.NewS3(ctx, cfg)
		if err != nil {
			return "", false, err
		}
		defer s.Close()
		_, err = readAll(ctx, s, key)
		if err == nil {
			return "succeeded", false, nil
		}
		return errorShape(err), errors.Is(err, objstore.ErrAccessDenied), nil
	}
	wrongSecret, deniedSecret, err := try(e.cfg.AccessKey, e.cfg.SecretKey+"-wrong")
	if err != nil {
		return "", "", err
	}
	unknown, deniedUnknown, err := try("SNAPKEEPANALYZEUNKNOWN", "unknown-secret")
	if err != nil {
		return "", "", err
	}
	detail := fmt.Sprintf("GET signed with a wrong secret key: %s; with an unknown access key: %s", wrongSecret, unknown)
	switch {
	case wrongSecret == "succeeded" || unknown == "succeeded":
		return Unsupported, detail + ": the server does not check signatures, so credentials protect nothing", nil
	case !deniedSecret || !deniedUnknown:
		return Unsupported, detail + ": not recognised as a refusal (403)", nil
	}
	return OK, detail + " (both objstore.ErrAccessDenied)", nil
}

func checkThroughput(ctx context.Context, e *env) (Outcome, string, error) {
	src, data, err := e.largeObject(ctx)
	if err != nil {
		return "", "", err
	}
	got, err := e.read(ctx, src)
	if err != nil {
		return "", "", err
	}
	if !bytes.Equal(got, data) {
		return Unsafe, fmt.Sprintf("GET of the %d-byte object returned %d different bytes", len(data), len(got)), nil
	}
	return OK, fmt.Sprintf("PUT and GET of one %d-byte object (rates in the per-operation figures)", len(data)), nil
}
