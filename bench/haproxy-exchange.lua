-- The do-it-yourself way to see the seed fault in HAProxy, as a user who
-- wants the module's job done without it would write it: a Lua action
-- after "http-response wait-for-body" that reads each answer for the
-- errorFE redirect, a 500 naming its front end (X-FEServer), and the
-- errorFE page's marker in the first 4 KB of HTML.  A failure is marked
-- in a variable and a response header; nothing is retried or ejected.
-- It is a peer in make bench (bench/run): what reading answers costs
-- HAProxy, against what the module costs nginx.  See
-- docs/performance.md.

local marker = "ASP.auth_errorfe_aspx"

core.register_action("exchange_judge", { "http-res" }, function(txn)
    local status = tonumber(txn.f:status()) or 0
    local failed = false

    if status >= 300 and status < 400 then
        local location = txn.sf:res_hdr("location")
        failed = location ~= nil
                 and string.find(location, "/auth/errorFE.aspx", 1, true)
                     ~= nil

    elseif status == 500 then
        failed = (tonumber(txn.f:res_hdr_cnt("x-feserver")) or 0) > 0

    elseif status == 200 then
        local ctype = txn.sf:res_hdr("content-type") or ""
        if string.find(ctype, "text/html", 1, true) == 1 then
            local body = txn.sf:res_body() or ""
            failed = string.find(string.sub(body, 1, 4096), marker, 1, true)
                     ~= nil
        end
    end

    if failed then
        txn:set_var("txn.exchange_failure", 1)
        txn.http:res_add_header("X-Exchange-Failure", "1")
    end
end)
