package main

import (
	"errors"
	"fmt"

	"tillagent/internal/config"
	"tillagent/sync/client"
)

// timeoutHint is what `sync now` tells the technician when a request to
// head office did not get through in time (client.FailTimeout or
// client.FailNoAnswer): the cashier's message and the hint naming the
// settings that matter for what timed out. A push's size is
// sync.batch_size, a feed page's sync.page_size; a head office that sends
// no answer at all is not a slow link, so neither size is the cause.
func timeoutHint(err error, sc config.Sync) (message, hint string) {
	var te *client.TimeoutError
	push := errors.As(err, &te) && te.Push()
	if client.FailureKind(err) == client.FailNoAnswer {
		hint = fmt.Sprintf("head office accepted the connection but sent no answer at all within sync.request_timeout (%s): it is stuck or overloaded (see head office's log and its database), or something on the way (a proxy) holds the request; this is not a slow link, and the page size is not the cause",
			sc.RequestTimeout)
		if push {
			hint += fmt.Sprintf("; if head office is only slow to take a push of up to sync.batch_size (%d) entries, lower sync.batch_size or raise sync.request_timeout", sc.BatchSize)
		}
		return "Офис не отвечает: продажи продолжаются", hint
	}
	if push {
		return "Офис не успевает принять журнал (медленная связь): продажи продолжаются",
			fmt.Sprintf("a push of journal entries did not get through within sync.request_timeout (%s): on a slow link lower sync.batch_size (%d entries a push) or raise sync.request_timeout",
				sc.RequestTimeout, sc.BatchSize)
	}
	return "Офис не успевает ответить (медленная связь): продажи продолжаются",
		fmt.Sprintf("head office answered but a feed page did not arrive whole within sync.request_timeout (%s): on a slow link raise sync.request_timeout or lower sync.page_size (%d; a feed page that comes too slowly is asked again at half the size, down to 100, and grows back after quick pages)",
			sc.RequestTimeout, sc.PageSize)
}
