#include "crunchsecrets/vault/transport.hpp"

#include <algorithm>
#include <stdexcept>

namespace cs::vault {

TransferWindow::TransferWindow(std::size_t total, std::size_t limit)
    : m_limit(std::max<std::size_t>(1, limit)), m_started(total), m_ended(total) {}

std::optional<std::size_t> TransferWindow::next() {
  if (m_in_flight >= m_limit || m_next >= m_started.size()) {
    return std::nullopt;
  }
  m_started[m_next] = true;
  ++m_in_flight;
  return m_next++;
}

void TransferWindow::set_limit(std::size_t limit) {
  m_limit = std::max<std::size_t>(1, limit);
}

void TransferWindow::finish(std::size_t i) {
  // A transfer finishing twice, or one never started, would let the window overfill: a bug in
  // the transport, not something to carry on from.
  if (i >= m_started.size() || !m_started[i] || m_ended[i]) {
    throw std::logic_error("TransferWindow::finish: request not in flight");
  }
  m_ended[i] = true;
  --m_in_flight;
  ++m_finished;
}

} // namespace cs::vault
