# A compile error: i;ascii-numeric has no substring match (RFC 4790 9.1.1, RFC 5228 2.7.3).
require "comparator-i;ascii-numeric";
if header :contains :comparator "i;ascii-numeric" "x-priority" "3" {
    discard;
}
