-- A management GET with credentials; the path comes from $PATH_QUERY.
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  ["X-Acting-User"] = "bench@example.com",
}
local path = os.getenv("PATH_QUERY")
function request()
  return wrk.format("GET", path, headers)
end
function response(status)
  if status ~= 200 then
    io.stderr:write(path .. " failed with " .. status .. "\n")
  end
end
