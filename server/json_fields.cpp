#include "server/json_fields.h"

#include <limits>

#include "server/api_error.h"

namespace tessera::json_fields {
namespace {

const nlohmann::json* find(const nlohmann::json& obj, const std::string& key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

const nlohmann::json& require_object(const nlohmann::json& body, const std::string& what) {
  if (!body.is_object()) {
    throw ApiError(400, "invalid_request_error", what + " must be a JSON object", std::nullopt,
                   "invalid_type");
  }
  return body;
}

std::optional<bool> get_bool(const nlohmann::json& obj, const std::string& key) {
  const auto* v = find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw invalid_param(key, "must be a boolean");
  return v->get<bool>();
}

std::optional<int64_t> get_int(const nlohmann::json& obj, const std::string& key, int64_t lo,
                               int64_t hi) {
  const auto* v = find(obj, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) {
      throw invalid_param(key,
                          "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer()) throw invalid_param(key, "must be an integer");
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    throw invalid_param(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                 "], got " + std::to_string(x));
  }
  return x;
}

std::optional<double> get_number(const nlohmann::json& obj, const std::string& key) {
  const auto* v = find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw invalid_param(key, "must be a number");
  return v->get<double>();
}

std::optional<std::string> get_string(const nlohmann::json& obj, const std::string& key) {
  const auto* v = find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw invalid_param(key, "must be a string");
  return v->get<std::string>();
}

std::vector<std::string> get_string_or_list(const nlohmann::json& obj, const std::string& key) {
  const auto* v = find(obj, key);
  if (!v) return {};
  if (v->is_string()) return {v->get<std::string>()};
  if (!v->is_array()) throw invalid_param(key, "must be a string or an array of strings");
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string()) throw invalid_param(key, "must be a string or an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int32_t> get_int_list(const nlohmann::json& obj, const std::string& key) {
  const auto* v = find(obj, key);
  if (!v) return {};
  if (!v->is_array()) throw invalid_param(key, "must be an array of integers");
  return to_token_ids(*v, key);
}

std::vector<int32_t> to_token_ids(const nlohmann::json& arr, const std::string& param) {
  std::vector<int32_t> out;
  out.reserve(arr.size());
  for (const auto& e : arr) {
    if (!e.is_number_integer()) throw invalid_param(param, "must contain only integer token ids");
    if (e.is_number_unsigned()
            ? e.get<uint64_t>() > uint64_t(std::numeric_limits<int32_t>::max())
            : (e.get<int64_t>() < 0 || e.get<int64_t>() > std::numeric_limits<int32_t>::max())) {
      throw invalid_param(param, "token ids must be in [0, 2^31)");
    }
    out.push_back(static_cast<int32_t>(e.get<int64_t>()));
  }
  return out;
}

}  // namespace tessera::json_fields
