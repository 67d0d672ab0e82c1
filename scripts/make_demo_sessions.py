#!/usr/bin/env python3
"""Assembles the built-in demo bundles (fixtures/sessions/<scenario>/) from the recorded
fixtures under fixtures/ews and fixtures/http, so each demo answer is a fixture whose origin
is documented there. Run from the repository root after changing a fixture; the bundles are
committed (build.rs embeds them) and tests/demo.rs checks every scenario's verdict."""
import json, os, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures")
OUT = os.path.join(FIX, "sessions")
EXO = "https://outlook.office365.com/EWS/Exchange.asmx"
ONPREM = "https://mail.contoso.com/EWS/Exchange.asmx"
STARTED = "2026-11-24T09:00:00Z"

HEALTHY = {
    "ews.get_folder.msgfolderroot": "ews/get_folder/success.xml",
    "ews.get_folder.sentitems": "ews/get_folder/success.xml",
    "ews.find_item.inbox": "ews/find_item/success_inbox.xml",
    "ews.get_folder.drafts": "ews/get_folder/success.xml",
    "ews.get_user_availability.self": "ews/get_user_availability/success.xml",
    "ews.get_folder.calendar": "ews/get_folder/success_calendar.xml",
    "ews.find_item.calendar_view": "ews/find_item/success_calendar_view.xml",
    "ews.sync_folder_items.calendar": "ews/sync_folder_items/success.xml",
}
ALL_AVAILABLE = ["available"] * 4


def xml_exchange(path, status=200, reason="OK"):
    body = open(os.path.join(FIX, path)).read()
    return f"# body: fixtures/{path}\nHTTP/1.1 {status} {reason}\nContent-Type: text/xml; charset=utf-8\nrequest-id: 6f1c2a9e-0d3b-4c7a-9e21-5b8f0c4d2e10\nX-FEServer: AM0PR06CA0096\n\n{body}"


def http_exchange(path):
    text = open(os.path.join(FIX, path)).read()
    lines = text.splitlines(keepends=True)
    body = "".join(l for l in lines if not l.startswith("#"))
    return f"# body: fixtures/{path}\n{body}"


def json_exchange(path, status=200, reason="OK"):
    text = open(os.path.join(FIX, path)).read()
    body = "".join(l for l in text.splitlines(keepends=True) if not l.startswith("//"))
    return f"# body: fixtures/{path}\nHTTP/1.1 {status} {reason}\nContent-Type: application/json; charset=utf-8\n\n{body}"


def xml_answer(path):
    body = open(os.path.join(FIX, path)).read()
    return f"# body: fixtures/{path}\nHTTP/1.1 200 OK\nContent-Type: text/xml; charset=utf-8\nX-FEServer: EXCH01\n\n{body}"


def scenario(name, title, mailbox, endpoint, auth, exchanges, exit_code, codes, features, d=None, discovery=None):
    d = d or os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    meta = {
        "schema": "ews-probe.session.v1",
        "mailbox": mailbox,
        "endpoint": endpoint,
        "auth": auth,
        "write": False,
        "server_version": "Exchange2013_SP1",
        "started_at": STARTED,
        **({"discovery": discovery} if discovery else {}),
        "title": title,
        "expect": {"exit_code": exit_code, "codes": codes, "features": features},
    }
    if title is None:
        del meta["title"]
    if exit_code is None:
        del meta["expect"]
    with open(os.path.join(d, "session.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    for i, (key, text, ms) in enumerate(exchanges, 1):
        with open(os.path.join(d, f"{i:03}-{key}.http"), "w") as f:
            f.write(f"# demo scenario {name}: recorded answer for {key}\n# key: {key}\n# duration_ms: {ms}\n{text}")


def exo_challenge():
    return ("auth.challenge", http_exchange("http/exo_401_challenge.http"), 38.2)


def onprem_challenge():
    return ("auth.challenge", http_exchange("http/onprem_401_ntlm_only.http"), 6.1)


def healthy(overrides=None, extra=None):
    ex = []
    for i, (k, p) in enumerate(HEALTHY.items()):
        if overrides and k in overrides:
            for text in overrides[k]:
                ex.append((k, text, 48.0))
        else:
            ex.append((k, xml_exchange(p), 41.5 if i == 0 else 45.0 + i))
    return ex


scenario("healthy-exchange-online", "Healthy Exchange Online mailbox (delegated OAuth token): every feature available",
         "megan.bowen@contoso.onmicrosoft.com", EXO, "bearer", [exo_challenge()] + healthy(), 0, [], ALL_AVAILABLE)
scenario("consumer-basic-401", "Outlook.com address with Basic credentials: EWS answers 401",
         "jamie.doe@outlook.com", EXO, "basic",
         [exo_challenge(), ("ews.get_folder.msgfolderroot", http_exchange("http/consumer_401_basic.http"), 96.3)],
         2, ["consumer_account_no_ews"], ["unavailable"] * 4)
scenario("consumer-token-403", "Hotmail address with a consumer (personal account) token: EWS answers 403 with an empty body",
         "jamie.doe@hotmail.com", "https://outlook.live.com/EWS/Exchange.asmx", "bearer",
         [("ews.get_folder.msgfolderroot", http_exchange("http/consumer_403_empty.http"), 88.1)],
         2, ["consumer_account_no_ews"], ["unavailable"] * 4)
scenario("tenant-ews-blocked", "Work account on Exchange Online after 2026-10-01, tenant has not allowed EWS: 403",
         "adele.vance@contoso.com", EXO, "bearer",
         [exo_challenge(), ("ews.get_folder.msgfolderroot", http_exchange("http/exo_403_ews_blocked.http"), 102.7)],
         2, ["ews_access_blocked"], ["unavailable"] * 4)
scenario("throttled-then-recovered", "Exchange Online busy: FindItem gets ErrorServerBusy with a 600 ms back-off, the retry succeeds",
         "megan.bowen@contoso.onmicrosoft.com", EXO, "bearer",
         [exo_challenge()] + healthy({"ews.find_item.inbox": [xml_exchange("ews/soap_fault/server_busy_short_backoff.xml", 500, "Internal Server Error"),
                                           xml_exchange("ews/find_item/success_inbox.xml")]}),
         1, ["throttled"], ["degraded", "available", "available", "available"])
scenario("calendar-access-denied", "Calendar folder denied to the caller: calendar sync unavailable, the rest works",
         "megan.bowen@contoso.onmicrosoft.com", EXO, "bearer",
         [exo_challenge()] + healthy({"ews.get_folder.calendar": [xml_exchange("ews/get_folder/error_access_denied.xml")],
                  "ews.find_item.calendar_view": [xml_exchange("ews/find_item/error_access_denied.xml")],
                  "ews.sync_folder_items.calendar": [xml_exchange("ews/sync_folder_items/error_access_denied.xml")]}),
         1, ["folder_access_denied"], ["available", "available", "available", "unavailable"])
scenario("onprem-ntlm-only", "On-premises Exchange 2010 offering only Negotiate/NTLM, probed with Basic",
         "j.smith@contoso.com", ONPREM, "basic",
         [onprem_challenge(), ("ews.get_folder.msgfolderroot", http_exchange("http/onprem_401_ntlm_only.http"), 12.4)],
         2, ["invalid_credentials", "auth_scheme_not_offered"], ["unavailable"] * 4)
scenario("wrong-token-audience", "Token issued for Microsoft Graph, not Exchange: 401 with x-ms-diagnostics 2000003",
         "adele.vance@contoso.com", EXO, "bearer",
         [exo_challenge(), ("ews.get_folder.msgfolderroot", http_exchange("http/exo_401_wrong_audience.http"), 91.0)],
         2, ["token_wrong_audience"], ["unavailable"] * 4)
scenario("consumer-device-code-refused", "Outlook.com account signing in with the device code flow against a work tenant: AADSTS50020, no EWS request sent",
         "jamie.doe@outlook.com", EXO, "device-code",
         [exo_challenge(),
          ("auth.devicecode", http_exchange("http/aad_devicecode_200.http"), 142.0),
          ("auth.token", http_exchange("http/aad_token_400_authorization_pending.http"), 88.5),
          ("auth.token", http_exchange("http/aad_token_400_aadsts50020.http"), 91.3)],
         2, ["consumer_account_no_ews"], ["unavailable"] * 4)
scenario("onprem-ntlm-healthy", "On-premises Exchange 2016 with NTLM: handshake on one connection, then every feature available",
         "j.smith@contoso.com", ONPREM, "ntlm",
         [onprem_challenge(),
          ("auth.ntlm", http_exchange("http/onprem_ntlm_challenge.http"), 4.2),
          ("auth.ntlm", http_exchange("http/onprem_ntlm_authenticated_200.http"), 9.8)] + healthy(),
         0, [], ALL_AVAILABLE)
ONPREM_EX = "https://mail.contoso.example/EWS/Exchange.asmx"
scenario("onprem-found-by-autodiscover", "No EWS URL given: realm discovery (no Entra ID tenant), Autodiscover v2 has no answer, the website has no Autodiscover, autodiscover.<domain> challenges, Basic after the challenge gets the POX settings; every feature available at the discovered on-premises endpoint",
         "j.smith@contoso.example", None, "basic",
         [("discover.realm", json_exchange("autodiscover/realm_unknown.json"), 96.0),
          ("discover.credential_type", json_exchange("autodiscover/credential_type_none.json"), 104.0),
          ("autodiscover.01.v2", http_exchange("http/autodiscover_v2_404.http"), 88.0),
          ("autodiscover.02.pox", http_exchange("http/iis_404_html.http"), 35.2),
          ("autodiscover.03.pox", http_exchange("http/autodiscover_401_challenge.http"), 12.1),
          ("autodiscover.04.pox_auth", xml_answer("autodiscover/pox_settings.xml"), 61.7),
          ("auth.challenge", http_exchange("http/onprem_401_basic_and_windows.http"), 5.8)]
         + [(k, t.replace("AM0PR06CA0096", "EXCH01"), ms) for (k, t, ms) in healthy()],
         0, [], ALL_AVAILABLE, discovery={"realm": True, "autodiscover": True, "trust_hosts": []})


def switch_scenario(name, title, side_from, side_to, exit_code, logout, to_codes):
    """A switch bundle: session.json of kind "switch"; each side an ordinary bundle in from/, to/."""
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    meta = {"schema": "ews-probe.session.v1", "kind": "switch", "title": title,
            "expect": {"exit_code": exit_code, "logout": logout, "to_codes": to_codes}}
    with open(os.path.join(d, "session.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    for sub, (mailbox, endpoint, auth, exchanges) in (("from", side_from), ("to", side_to)):
        scenario(f"{name} ({sub})", None, mailbox, endpoint, auth, exchanges, None, None, None,
                 d=os.path.join(d, sub))


# The integration signs in to a work mailbox (delegated token, everything works), then the user
# switches to a personal outlook.com mailbox: the Microsoft account sign-in succeeds and yields a
# consumer token, but EWS answers 403 with an empty body (fixtures/http/consumer_403_empty.http).
switch_scenario("switch-work-to-outlook",
                "Work mailbox, then an outlook.com one in the same session: EWS refuses the consumer mailbox",
                ("megan.bowen@contoso.onmicrosoft.com", EXO, "bearer", healthy()),
                ("jamie.doe@outlook.com", EXO, "bearer",
                 [("ews.get_folder.msgfolderroot", http_exchange("http/consumer_403_empty.http"), 88.1)]),
                2, True, ["consumer_account_no_ews"])
print("wrote", sorted(os.listdir(OUT)))
