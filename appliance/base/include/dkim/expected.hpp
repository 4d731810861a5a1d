#pragma once
// A minimal std::expected for C++20 (std::expected is C++23, and clang-14's view of libstdc++
// does not provide it). Errors that cross module boundaries are values of this type.

#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace dkim {

template <class E>
class Unexpected {
  public:
    explicit Unexpected(E error) : error_(std::move(error)) {}
    E& error() & { return error_; }
    E&& error() && { return std::move(error_); }

  private:
    E error_;
};

template <class E>
Unexpected<std::decay_t<E>> unexpected(E&& error) {
    return Unexpected<std::decay_t<E>>(std::forward<E>(error));
}

namespace detail {
[[noreturn]] inline void bad_expected_access() {
    // Reading the value of a failed result is a programming error, never an input error.
    std::abort();
}
}  // namespace detail

template <class T, class E>
class [[nodiscard]] Expected {
  public:
    Expected(T value) : storage_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
    template <class G>
    Expected(Unexpected<G> error)  // NOLINT
        : storage_(std::in_place_index<1>, std::move(error).error()) {}

    bool has_value() const noexcept { return storage_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & {
        if (!has_value()) {
            detail::bad_expected_access();
        }
        return std::get<0>(storage_);
    }
    const T& value() const& {
        if (!has_value()) {
            detail::bad_expected_access();
        }
        return std::get<0>(storage_);
    }
    T&& value() && {
        if (!has_value()) {
            detail::bad_expected_access();
        }
        return std::get<0>(std::move(storage_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const E& error() const& {
        if (has_value()) {
            detail::bad_expected_access();
        }
        return std::get<1>(storage_);
    }
    E&& error() && {
        if (has_value()) {
            detail::bad_expected_access();
        }
        return std::get<1>(std::move(storage_));
    }

  private:
    std::variant<T, E> storage_;
};

template <class E>
class [[nodiscard]] Expected<void, E> {
  public:
    Expected() = default;
    template <class G>
    Expected(Unexpected<G> error) : error_(std::move(error).error()) {}  // NOLINT

    bool has_value() const noexcept { return !error_.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    void value() const {
        if (!has_value()) {
            detail::bad_expected_access();
        }
    }
    const E& error() const& {
        if (has_value()) {
            detail::bad_expected_access();
        }
        return *error_;
    }
    E&& error() && {
        if (has_value()) {
            detail::bad_expected_access();
        }
        return std::move(*error_);
    }

  private:
    std::optional<E> error_;
};

}  // namespace dkim
