#pragma once
// A Signer that captures what MessageSigner asks it to sign: the exact header block a relay
// sends dkim-signerd (the canonicalized fields, then the DKIM-Signature field with b= empty).

#include <string>
#include <string_view>

#include "dkim/dkim/signer.hpp"

namespace dkim::test {

class CapturingSigner final : public Signer {
  public:
    explicit CapturingSigner(SigningAlgorithm a) : algorithm_(a) {}
    SigningAlgorithm algorithm() const override { return algorithm_; }
    Expected<std::string, std::string> sign(std::string_view data) override {
        captured = std::string(data);
        return std::string(64, 'x');
    }
    std::string captured;

  private:
    SigningAlgorithm algorithm_;
};

}  // namespace dkim::test
