#!/usr/bin/perl

# The admin API against a page of another site that an operator's browser
# has open: such a page can send a form (no custom header, no Origin in
# older browsers, any Host by DNS rebinding where access is an allow list
# only) but not a header of its choosing without a CORS preflight.  An
# order needs X-Exchange-Health-Admin, a Host that is one of the server's
# names, an address or localhost (the status page's check, t/40-status.t),
# and an Origin, if any, of this very site.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use JSON::PP ();

my $farm = farm(tls => 1);
my $ng = EH::Front::nginx($farm, server => <<'CONF');
server_name mail.contoso.com *.lb.contoso.com;
    location = /admin { exchange_health_status admin=on; }
CONF
$ng->start;

my $port = $ng->port;
my $H = 'X-Exchange-Health-Admin';

sub order {
    my (%h) = @_;
    my $host = delete $h{Host};
    my $r = $ng->request(POST => '/admin?action=drain&server=EXCH2&protocol=owa',
                         body => '', headers => \%h,
                         (defined $host ? (host => $host) : ()));
    my $j = eval { JSON::PP->new->utf8->decode($r->{body}) };
    return ($r->{status}, $j ? $j->{error} // '' : '');
}

sub drained {
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "u$_") for 1 .. 6;
    return $farm->server('EXCH2')->hits(path => '^/owa/') == 0;
}

my @refused = (
    [ 'a form: no header, no Origin', {}, qr/needs the header X-Exchange-Health-Admin/ ],
    [ 'an empty header', { $H => '' }, qr/needs the header/ ],
    [ 'an Origin of another scheme', { $H => 1, Origin => 'https://mail.contoso.com' },
      qr/another site \(Origin\)/ ],
    [ 'Origin: evil://host', { $H => 1, Origin => 'evil://mail.contoso.com' },
      qr/another site \(Origin\)/ ],
    [ 'an Origin of another site', { $H => 1, Origin => 'http://evil.example' },
      qr/another site \(Origin\)/ ],
    [ 'an Origin with another port', { $H => 1, Origin => 'http://mail.contoso.com:1' },
      qr/another site \(Origin\)/ ],
    [ 'a Host that is not a server name (DNS rebinding)',
      { $H => 1, Host => 'rebind.evil.example' }, qr/Host is not a name of this server/ ],
    [ 'a Host that only ends like a name', { $H => 1, Host => 'evilmail.contoso.com' },
      qr/Host is not a name/ ],
    [ 'a Host that only starts like localhost', { $H => 1, Host => 'localhost.evil.example' },
      qr/Host is not a name/ ],
    [ 'a Host that only starts like an address', { $H => 1, Host => '127.0.0.1.evil.example' },
      qr/Host is not a name/ ],
);
for my $c (@refused) {
    my ($name, $h, $re) = @$c;
    my ($st, $err) = order(%$h);
    is $st, 403, "$name: 403";
    like $err, $re, "$name: says why";
    ok !drained(), "$name: nothing drained";
}
like $ng->error_log, qr/\[warn\].*admin order refused: the Host is not a name of this server/,
    'a refusal is logged at warn';

my @obeyed = (
    [ 'the header, no Origin (curl, a script)', { $H => 1 } ],
    [ 'the header and this site\'s Origin', { $H => 1, Origin => 'http://mail.contoso.com' } ],
    [ 'a wildcard server name', { $H => 1, Host => "lb1.lb.contoso.com:$port" } ],
    [ 'the address the request came to', { $H => 1, Host => "127.0.0.1:$port" } ],
    [ 'another address (NAT, a virtual IP)', { $H => 1, Host => '192.0.2.7' } ],
    [ 'an IPv6 address', { $H => 1, Host => "[::1]:$port" } ],
    [ 'localhost', { $H => 1, Host => "localhost:$port" } ],
);
for my $c (@obeyed) {
    my ($name, $h) = @$c;
    my ($st) = order(%$h);
    is $st, 200, "$name: obeyed";
    ok drained(), "$name: drained";
    $ng->request(POST => '/admin?action=ready&server=EXCH2', body => '',
                 headers => { $H => 1 });
}

$ng->stop;
done_testing;
