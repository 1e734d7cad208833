package xds

// QuotaSharesChanged tells the server that Settings.QuotaShares answers
// differently now (a new split of a quota): every node is rebuilt after
// the debounce, and only nodes whose snapshot changed are pushed. Safe to
// call from any goroutine.
func (s *Server) QuotaSharesChanged() {
	s.mu.Lock()
	if !s.viewDirty {
		s.viewDirty, s.viewAt = true, s.cfg.Now()
	}
	s.mu.Unlock()
	s.signal()
}
