# RFC 5230 4.3: :mime, the reason is a MIME entity.
require "vacation";
vacation :mime :subject "Away" text:
Content-Type: text/plain; charset=utf-8

I am away (MIME reason).
.
;
