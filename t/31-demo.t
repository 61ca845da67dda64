#!/usr/bin/perl

# The README's demo command keeps working: the demo farm's failing server
# is taken out and no signed-in user sees its failure.  A port the admin
# names that something else holds is reported, and that something is left
# running; the set-up installs what it needs but stops no service.

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

subtest 'a port in use: said, and its holder left alone' => sub {
    my $held = EH::Util::listen_socket();
    my $port = $held->sockport;
    my $out = `$^X $FindBin::Bin/../tools/demo --port $port 2>&1`;
    isnt $? >> 8, 0, "tools/demo --port $port fails while it is taken";
    like $out, qr/127\.0\.0\.1:$port is in use by \S+.*pick another --port/,
        '... and says what is in the way' or diag $out;
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Proto => 'tcp', Timeout => 2);
    ok $c, '... whose socket still accepts';
};

unlike slurp("$FindBin::Bin/../tools/install-deps"), qr/systemctl\s+stop/,
    'tools/install-deps stops no service the machine runs';

done_testing;
