-- GET /api/verify, cycling through the secrets in $SECRETS (one per line).
local keys = {}
for line in io.lines(os.getenv("SECRETS")) do
  table.insert(keys, line)
end
local i = 0
function request()
  i = i % #keys + 1
  return wrk.format("GET", "/api/verify", { ["Authorization"] = "Bearer " .. keys[i] })
end
function response(status)
  if status ~= 200 then
    io.stderr:write("verify failed with " .. status .. "\n")
  end
end
