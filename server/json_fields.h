#pragma once
// Typed reads of optional fields from a JSON object. A missing field and an explicit null
// both read as "absent"; a present field of the wrong type throws ApiError 400 naming it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tessera::json_fields {

// The body itself must be an object.
const nlohmann::json& require_object(const nlohmann::json& body, const std::string& what);

std::optional<bool> get_bool(const nlohmann::json& obj, const std::string& key);
// Integers only (2.0 is rejected: OpenAI's API is typed), range-checked inclusively.
std::optional<int64_t> get_int(const nlohmann::json& obj, const std::string& key, int64_t lo,
                               int64_t hi);
std::optional<double> get_number(const nlohmann::json& obj, const std::string& key);
std::optional<std::string> get_string(const nlohmann::json& obj, const std::string& key);
// A string or an array of strings (OpenAI's `stop`).
std::vector<std::string> get_string_or_list(const nlohmann::json& obj, const std::string& key);
std::vector<int32_t> get_int_list(const nlohmann::json& obj, const std::string& key);
// Token ids from a JSON array, each a non-negative integer < 2^31.
std::vector<int32_t> to_token_ids(const nlohmann::json& arr, const std::string& param);

}  // namespace tessera::json_fields
