#!/usr/bin/perl

# The README's demo command keeps working: the demo farm's failing server
# is taken out and no signed-in user sees its failure.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

my $out = `$^X $FindBin::Bin/../tools/demo --check 2>&1`;
is $? >> 8, 0, 'tools/demo --check succeeds' or diag $out;
like $out, qr/30 signed-in OWA requests, 0 saw the failure/,
    'no user saw the failure';
like $out, qr/\(EXCH2\) ejected for owa/, 'EXCH2 was ejected for OWA';
like $out, qr/status page 200, one server failing/,
    'the status page shows it';

done_testing;
