//! `GetUserAvailabilityRequest`: free/busy of one mailbox (the probed one) over a short window,
//! what "Insert Availability" needs. The time zone is UTC (bias 0, no daylight rule) so the
//! request does not depend on where the probe runs.
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getuseravailability-operation>
//!
//! Note the response shape differs from every other operation: results come as
//! `FreeBusyResponseArray/FreeBusyResponse/ResponseMessage`, which the reader handles.

use crate::ews::{Operation, esc};
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct GetUserAvailability {
    pub mailbox: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// `xs:dateTime` without offset: the request's `t:TimeZone` (UTC here) gives its meaning.
fn local(t: OffsetDateTime) -> String {
    let s = super::utc(t);
    s.trim_end_matches('Z').to_string()
}

impl Operation for GetUserAvailability {
    // The WSDL operation is GetUserAvailability; its body element is GetUserAvailabilityRequest.
    const NAME: &'static str = "GetUserAvailability";
    const READ_ONLY: bool = true;

    fn write_body(&self, out: &mut String) {
        const UTC_RULE: &str = "<t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>1</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek>";
        out.push_str("<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias>");
        out.push_str(&format!(
            "<t:StandardTime>{UTC_RULE}</t:StandardTime><t:DaylightTime>{UTC_RULE}</t:DaylightTime></t:TimeZone>"
        ));
        out.push_str(&format!(
            "<m:MailboxDataArray><t:MailboxData><t:Email><t:Address>{}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType><t:ExcludeConflicts>false</t:ExcludeConflicts></t:MailboxData></m:MailboxDataArray>",
            esc(&self.mailbox)
        ));
        out.push_str(&format!(
            "<t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>{}</t:StartTime><t:EndTime>{}</t:EndTime></t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes><t:RequestedView>FreeBusy</t:RequestedView></t:FreeBusyViewOptions>",
            local(self.start),
            local(self.end)
        ));
        out.push_str("</m:GetUserAvailabilityRequest>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::body_of;
    use time::macros::datetime;

    #[test]
    fn serializes_free_busy_request() {
        let op = GetUserAvailability {
            mailbox: "alice@contoso.com".into(),
            start: datetime!(2026-01-05 00:00:00 UTC),
            end: datetime!(2026-01-06 00:00:00 UTC),
        };
        let expected = concat!(
            "<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias>",
            "<t:StandardTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>1</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime>",
            "<t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>1</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone>",
            "<m:MailboxDataArray><t:MailboxData><t:Email><t:Address>alice@contoso.com</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType><t:ExcludeConflicts>false</t:ExcludeConflicts></t:MailboxData></m:MailboxDataArray>",
            "<t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>2026-01-05T00:00:00</t:StartTime><t:EndTime>2026-01-06T00:00:00</t:EndTime></t:TimeWindow>",
            "<t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes><t:RequestedView>FreeBusy</t:RequestedView></t:FreeBusyViewOptions>",
            "</m:GetUserAvailabilityRequest>"
        );
        assert_eq!(body_of(&op), expected);
    }
}
