package objstore

import (
	"context"
	"fmt"
	"time"
)

// walkAttempts bounds the tries of one page: a transient error (IsTransient) is
// retried with backoff 100 ms, 200 ms, 400 ms, 800 ms; any other error ends the walk.
const walkAttempts = 5

// Walk lists every object under prefix, page after page of at most pageSize keys (0:
// the store's default), calling fn with each page in key order. A page that fails
// with a transient error is asked again; a token the store returns twice ends the walk
// (a server that loops would otherwise keep it going forever). It stops at fn's first
// error and returns it as is.
func Walk(ctx context.Context, store Store, prefix string, pageSize int, fn func(ListPage) error) error {
	token := ""
	for {
		page, err := listPage(ctx, store, prefix, token, pageSize)
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
		if err := fn(page); err != nil {
			return err
		}
		if page.NextToken == "" || page.NextToken == token {
			return nil
		}
		token = page.NextToken
	}
}

func listPage(ctx context.Context, store Store, prefix, token string, pageSize int) (ListPage, error) {
	var err error
	for attempt := range walkAttempts {
		var page ListPage
		if page, err = store.List(ctx, prefix, token, pageSize); err == nil {
			return page, nil
		}
		if !IsTransient(err) || attempt == walkAttempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ListPage{}, ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return ListPage{}, err
}
