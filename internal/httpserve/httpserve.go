// Package httpserve runs an http.Handler as a service (Serve(ctx) error) on
// a listener the caller bound, with sane timeouts and a graceful shutdown
// when the context ends. Both daemons use it.
package httpserve

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves Handler on Listener. The caller binds the listener so
// that a port in use is reported before anything starts.
type Server struct {
	Listener net.Listener
	Handler  http.Handler
	Log      *slog.Logger
}

// Serve serves until ctx ends, then shuts down gracefully, letting requests
// in flight finish (at most 10 s).
func (s *Server) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.Listener) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}
