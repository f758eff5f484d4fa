package objstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// pagedStore serves List from a script of answers, one per call.
type pagedStore struct {
	objstore.Store
	answers []func(token string) (objstore.ListPage, error)
	calls   int
}

func (s *pagedStore) List(_ context.Context, _, token string, _ int) (objstore.ListPage, error) {
	a := s.answers[s.calls]
	s.calls++
	return a(token)
}

func page(next string, keys ...string) func(string) (objstore.ListPage, error) {
	return func(string) (objstore.ListPage, error) {
		p := objstore.ListPage{NextToken: next}
		for _, k := range keys {
			p.Objects = append(p.Objects, objstore.ObjectInfo{Key: k})
		}
		return p, nil
	}
}

func fail(err error) func(string) (objstore.ListPage, error) {
	return func(string) (objstore.ListPage, error) { return objstore.ListPage{}, err }
}

func TestWalk(t *testing.T) {
	slowDown := &smithy.GenericAPIError{Code: "SlowDown", Message: "reduce your request rate"}
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}
	stop := errors.New("stop here")
	for _, tc := range []struct {
		name    string
		answers []func(string) (objstore.ListPage, error)
		fnErr   error
		keys    []string
		calls   int
		wantErr error
	}{
		{name: "pages in order", answers: []func(string) (objstore.ListPage, error){page("t1", "a", "b"), page("", "c")},
			keys: []string{"a", "b", "c"}, calls: 2},
		{name: "a transient error is asked again", answers: []func(string) (objstore.ListPage, error){page("t1", "a"), fail(slowDown), page("", "b")},
			keys: []string{"a", "b"}, calls: 3},
		{name: "a permanent error ends the walk", answers: []func(string) (objstore.ListPage, error){page("t1", "a"), fail(denied)},
			keys: []string{"a"}, calls: 2, wantErr: denied},
		{name: "a repeated token ends the walk", answers: []func(string) (objstore.ListPage, error){page("t1", "a"), page("t1", "b")},
			keys: []string{"a", "b"}, calls: 2},
		{name: "fn's error stops it", answers: []func(string) (objstore.ListPage, error){page("t1", "a"), page("", "b")},
			fnErr: stop, calls: 1, wantErr: stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &pagedStore{answers: tc.answers}
			var keys []string
			err := objstore.Walk(context.Background(), s, "p/", 0, func(p objstore.ListPage) error {
				if tc.fnErr != nil {
					return tc.fnErr
				}
				for _, o := range p.Objects {
					keys = append(keys, o.Key)
				}
				return nil
			})
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.keys, keys)
			require.Equal(t, tc.calls, s.calls)
		})
	}
}
