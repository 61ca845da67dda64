package EH::Test;

# use EH::Test;  -- strict, warnings, Test::More, the harness classes and
# short helpers.  See t/lib/README.md.

use strict;
use warnings;

use Test::More ();
use EH::Util ();
use EH::Capture ();
use EH::Cert ();
use EH::Client ();
use EH::Backend ();
use EH::Farm ();
use EH::Nginx ();

our @EXPORT = qw(farm backend nginx capture cert http_request raw_exchange
                 wait_until slurp spew run_dir nginx_version);

sub import {
    my $caller = caller;
    strict->import;
    warnings->import;
    # Test::More's functions in the caller's package
    eval "package $caller; Test::More->import; 1" or die $@;
    no strict 'refs';
    *{"${caller}::$_"} = \&{"EH::Test::$_"} for @EXPORT;
}

# farm(n => 3, tls => 1, ...)           -> EH::Farm
sub farm    { EH::Farm->new(@_) }
# backend(name => 'EXCH1', ...)         -> EH::Backend (started)
sub backend { EH::Backend->new(@_) }
# nginx(http => '...', ...)             -> EH::Nginx (not started)
sub nginx   { EH::Nginx->new(@_) }
# capture('errorfe-redirect')           -> EH::Capture
sub capture { EH::Capture->load(@_) }
# cert(cn => 'mail.contoso.com', ...)   -> { cert => path, key => path, ... }
sub cert    { EH::Cert::make(@_) }
# http_request(GET => '/x', port => N, ...) -> EH::Client::Response
sub http_request { EH::Client->request(@_) }
sub raw_exchange { EH::Client::raw_exchange(@_) }

sub wait_until { EH::Util::wait_until(@_) }
sub slurp      { EH::Util::slurp(@_) }
sub spew       { EH::Util::spew(@_) }
sub run_dir    { EH::Util::run_dir() }

# The version of the nginx under test (EH_NGINX), as (major, minor,
# patch), and whether it is at least the one given: nginx_version(1, 23)
sub nginx_version {
    my @at_least = @_;
    my @v = `${\ ($ENV{EH_NGINX} // '/usr/sbin/nginx')} -v 2>&1` =~ m{nginx/(\d+)\.(\d+)\.(\d+)};
    return @v unless @at_least;
    return 0 unless @v;
    return sprintf('%03d%03d%03d', @v)
        ge sprintf('%03d%03d%03d', (@at_least, 0, 0)[0 .. 2]);
}

1;
