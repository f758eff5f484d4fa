package client

import (
	"iter"

	"google.golang.org/protobuf/proto"
)

// pagedResponse is a listing's page: it says how to continue.
type pagedResponse interface {
	GetNextPageToken() string
}

// allPages iterates over every item of a paged listing, fetching a page at a time from
// req's token onwards. A failed page yields (zero, err) once and ends the iteration;
// stopping the loop early fetches no further pages.
func allPages[Req proto.Message, Resp pagedResponse, Item any](
	req Req,
	fetch func(Req) (Resp, error),
	items func(Resp) []Item,
	setToken func(Req, string),
) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var zero Item
		for {
			page, err := fetch(req)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range items(page) {
				if !yield(item, nil) {
					return
				}
			}
			if page.GetNextPageToken() == "" {
				return
			}
			req = clone(req)
			setToken(req, page.GetNextPageToken())
		}
	}
}

// failedIteration yields err once.
func failedIteration[Item any](err error) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var zero Item
		yield(zero, err)
	}
}
