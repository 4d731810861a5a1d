# The Debian package (cpack -G DEB: dkim-appliance_VERSION_amd64.deb): the binaries, the
# systemd units, sysusers.d/tmpfiles.d, the nftables ruleset, the configuration templates, the
# first-boot scripts, man pages made from --help (help2man), the README, SECURITY.md and the
# OpenAPI document. The console's files are compiled into dkim-webd (web/CMakeLists.txt), so
# the package carries no separate copy that could drift from what webd serves.
# Maintainer scripts (images/debian/): create the users and folders, enable the target, and
# never start a daemon; the units start only once configured (ConditionPathExists=).

set(_images ${PROJECT_SOURCE_DIR}/images)
install(DIRECTORY ${_images}/systemd/ DESTINATION lib/systemd/system FILES_MATCHING
  PATTERN "*.service" PATTERN "*.socket" PATTERN "*.target" PATTERN "*.timer")
install(FILES ${_images}/sysusers.d/dkim-appliance.conf DESTINATION lib/sysusers.d)
install(FILES ${_images}/tmpfiles.d/dkim-appliance.conf DESTINATION lib/tmpfiles.d)
install(FILES ${_images}/nftables/dkim-appliance.nft DESTINATION share/dkim-appliance/nftables)
install(FILES ${_images}/config/signerd.toml ${_images}/config/relayd.toml
  ${_images}/config/webd.toml ${_images}/config/notifyd.toml ${_images}/config/reportd.toml
  ${_images}/config/reports-fetch.conf
  ${_images}/config/softhsm2.conf
  DESTINATION share/dkim-appliance/config)
install(PROGRAMS ${_images}/firstboot/dkim-appliance-firstboot
  ${_images}/firstboot/dkim-appliance-welcome DESTINATION libexec/dkim-appliance)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/web/openapi.json
  DESTINATION share/doc/dkim-appliance)
if(EXISTS ${PROJECT_SOURCE_DIR}/SECURITY.md)
  install(FILES ${PROJECT_SOURCE_DIR}/SECURITY.md DESTINATION share/doc/dkim-appliance)
endif()

# Man pages from each binary's --help, when help2man is there (the package build needs it).
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(_man_pages "")
  set(_name_dkim-appliance "operator CLI of the DKIM signing appliance")
  set(_name_dkim-signerd "DKIM signing enforcement point: token, grants, audit log")
  set(_name_dkim-relayd "DKIM signing and verifying SMTP relay")
  set(_name_dkim-webd "HTTPS API and approval console of the DKIM appliance")
  set(_name_dkim-reportd "DMARC and TLS reports of the DKIM appliance, joined with its signing record")
  foreach(_exe dkim-appliance dkim-signerd dkim-relayd dkim-webd dkim-reportd)
    set(_page ${CMAKE_BINARY_DIR}/man/${_exe}.8)
    add_custom_command(OUTPUT ${_page}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${HELP2MAN} --no-info --section=8 --version-string=${PROJECT_VERSION}
              --source=dkim-appliance "--name=${_name_${_exe}}" --output=${_page}
              $<TARGET_FILE:${_exe}>
      COMMAND gzip -9nf ${_page}
      DEPENDS ${_exe}
      COMMENT "man page of ${_exe} (help2man)")
    list(APPEND _man_pages ${_page}.gz)
  endforeach()
  add_custom_target(man_pages ALL DEPENDS ${_man_pages})
  add_dependencies(shipped man_pages)
  install(FILES ${_man_pages} DESTINATION share/man/man8)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dkim-appliance)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "DKIM appliance maintainers <security@dkim-appliance.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "DKIM signing appliance: keys in a PKCS#11 token, signing unlocked by approved grants")
set(CPACK_PACKAGE_DESCRIPTION
  "dkim-signerd signs only inside just-in-time grants, with keys generated in a PKCS#11 token\n(SoftHSM2 or an HSM) that never leave it, and writes a tamper-evident audit log;\ndkim-relayd signs outbound mail and checks inbound mail (DKIM, SPF, DMARC);\ndkim-webd is the HTTPS approval console; dkim-reportd keeps the DMARC and TLS reports\nreceivers send and joins them with the signing record; dkim-appliance is the operator's CLI.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # dkim-appliance_VERSION_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)                # the debug info stays in the build folder
# systemd: sysusers, tmpfiles, creds and the units; openssl and softhsm2: the first boot.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 252), openssl, softhsm2 | p11-kit-modules")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "softhsm2, nftables, publicsuffix")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_images}/debian/postinst ${_images}/debian/prerm ${_images}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
